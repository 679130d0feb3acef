"""Class labels in the three forms users bring: a JSON list, a JSON {"0": label} mapping
(TorchServe's index_to_name.json), or a text file with one label per line."""
from __future__ import annotations

import json
from pathlib import Path


def parse_labels(text: str) -> list[str]:
    """The labels in index order; ValueError says what is wrong with the file's content."""
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        doc = json.loads(stripped)
        if isinstance(doc, dict):
            missing = [i for i in range(len(doc)) if str(i) not in doc]
            if missing:
                raise ValueError(f"a label mapping needs the keys \"0\"..\"{len(doc) - 1}\"; "
                                 f"\"{missing[0]}\" is missing")
            labels = [doc[str(i)] for i in range(len(doc))]
        else:
            labels = doc
        if not all(isinstance(label, str) and label for label in labels):
            raise ValueError("every label must be a non-empty string")
    else:
        # Blank lines (a trailing newline, spacing) are not labels.
        labels = [line.strip() for line in stripped.splitlines() if line.strip()]
    if not labels:
        raise ValueError("no labels")
    if len(set(labels)) != len(labels):
        raise ValueError("labels repeat: " + ", ".join(sorted({x for x in labels if labels.count(x) > 1})))
    return labels


def read_labels(path: Path) -> list[str]:
    return parse_labels(Path(path).read_text(encoding="utf-8"))


def labels_json(labels: list[str]) -> str:
    """The form packed into every archive as labels.json, whatever the user's file looked like."""
    return json.dumps({str(i): label for i, label in enumerate(labels)}, ensure_ascii=False, indent=1) + "\n"
