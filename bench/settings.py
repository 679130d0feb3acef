"""Serving settings: which combinations `make tune` may try, and writing a winner into its spec.

No Locust here (tune.py imports Locust, which monkey-patches sockets): unit tests import this.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from handlers.runtime import usable_cores
from stackctl.specs import load_spec


def parallelism_options(cores: int) -> list[tuple[int, int]]:
    """(workers, torch threads per worker) with workers x threads <= cores."""
    options = {(1, cores), (1, 1)}
    if cores >= 2:
        options.add((2, cores // 2))
    return sorted(options, key=lambda o: (-o[0] * o[1], o[0]))


def set_values(text: str, section: str, values: dict[str, Any]) -> str:
    """Replace `key: value` lines directly under a top-level `section:`, keeping any comment.

    Missing keys are added as the section's first lines. Values are scalars (numbers, `auto`).
    """
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(rf"^{re.escape(section)}:\s*(#.*)?$", line)), None)
    if start is None:
        raise ValueError(f"no top-level `{section}:` section")
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"^\S", lines[i])), len(lines))
    indents = [len(line) - len(line.lstrip(" ")) for line in lines[start + 1:end] if line.strip()
               and not line.lstrip().startswith("#")]
    indent = min(indents) if indents else 2
    remaining = dict(values)
    line_re = re.compile(rf"^( {{{indent}}})(\w+)(:\s*)([^#\n]*?)(\s*#.*)?(\n?)$")
    for i in range(start + 1, end):
        match = line_re.match(lines[i])
        if not match or match.group(2) not in remaining:
            continue
        prefix, key, sep, old, comment, newline = match.groups(default="")
        new = str(remaining.pop(key))
        if comment:  # keep the comment in its column where the new value leaves room
            width = len(old) + len(comment) - len(comment.lstrip())
            comment = " " * max(1, width - len(new)) + comment.lstrip()
        lines[i] = f"{prefix}{key}{sep}{new}{comment}{newline}"
    added = [f"{' ' * indent}{key}: {value}\n" for key, value in remaining.items()]
    return "".join(lines[:start + 1] + added + lines[start + 1:])


def write_back(source: Path, result: dict[str, Any]) -> None:
    """A tune result's winner into the spec file at `source`."""
    text = source.read_text()
    text = set_values(text, "serving", result["winner"])
    auto = max(1, usable_cores() // result["winner"]["maxWorkers"])
    # `auto` already gives cores / workers; write a number only when the winner differs from it.
    threads = "auto" if result["torch_threads"] == auto else result["torch_threads"]
    text = set_values(text, "handler", {"torch_threads": threads})
    load_spec_text(source, text)  # still a valid spec, or nothing is written
    source.write_text(text)


def load_spec_text(source: Path, text: str) -> None:
    """Validate edited spec text as a spec named like `source` (raises SpecError)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / source.name
        path.write_text(text)
        load_spec(path)
