"""Write typed spec sections back into a spec file, in place: the one way a program edits a spec.

`make tune` changes a few serving values; the file is the operator's, with comments that say why
each value is what it is. So the file is not re-dumped: the YAML parser finds where each changed
value is written (its node's position) and only that text is replaced; comments and layout stay.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from handlers.sections import written
from stackctl.catalog.specs import ModelSpec, load_spec


def write_sections(spec: ModelSpec, **sections: Any) -> None:
    """`spec`'s file with these typed sections (by spec key: serving=..., handler=...) written in;
    only the values that differ from the file's change. Validated first: a spec that would not
    load is never written."""
    text = spec.source.read_text()
    for name, section in sections.items():
        before = written(getattr(spec, name))
        changed = {k: v for k, v in written(section).items() if k not in before or before[k] != v}
        text = set_values(text, name, changed)
    load_spec_text(spec.source, text)  # still a valid spec, or nothing is written
    spec.source.write_text(text)


def set_values(text: str, section: str, values: dict[str, Any]) -> str:
    """Replace the scalar values of keys directly under a top-level `section:`, keeping any comment
    in its column where the new value leaves room. Missing keys are added as the section's first lines."""
    root = yaml.compose(text)
    node = next((v for k, v in (root.value if isinstance(root, yaml.MappingNode) else []) if k.value == section), None)
    if not isinstance(node, yaml.MappingNode) or node.flow_style or not node.value:
        raise ValueError(f"no top-level `{section}:` section written as a block of keys")
    remaining = dict(values)
    edits: list[tuple[int, int, str]] = []
    for key, value in node.value:
        if key.value not in remaining:
            continue
        if not isinstance(value, yaml.ScalarNode):
            raise ValueError(f"`{section}.{key.value}` is not a single value")
        edits.append((value.start_mark.index, value.end_mark.index, _scalar(remaining.pop(key.value))))
    first = node.value[0][0].start_mark
    added = "".join(f"{' ' * first.column}{key}: {_scalar(value)}\n" for key, value in remaining.items())
    if added:
        edits.append((first.index - first.column, first.index - first.column, added))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + _keep_comment_column(text[end:], end - start, len(new))
    return text


def _keep_comment_column(rest: str, old_width: int, new_width: int) -> str:
    """`rest` (what follows a replaced value) with the spaces before its `# comment` adjusted."""
    gap = len(rest) - len(rest.lstrip(" "))
    if not rest[gap:].startswith("#") or old_width == new_width and gap:
        return rest
    return " " * max(1, old_width + gap - new_width) + rest[gap:]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_spec_text(source: Path, text: str) -> ModelSpec:
    """Edited spec text loaded as a spec named like `source` (raises SpecError); its `source` is
    a temporary file, gone on return."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / source.name
        path.write_text(text)
        return load_spec(path)
