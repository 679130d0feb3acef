"""The READMEs that name each module's job match the tree (issue #28): stackctl/README.md (and
handlers/README.md once it exists) lists every module of its package, each where it lives, and
nothing that is gone; the folders in README.md's layout table exist.

A package README lists modules in Markdown tables, one `name.py` (or `name.json`) in backticks
per row, under `##` headings. Under a heading that starts with a folder in backticks
(## `catalog/`: ...) the modules live in that sub-folder; under any other heading, in the
package's own folder.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from stackctl import paths

MODULE = re.compile(r"^\| `([\w.]+\.(?:py|json))` \|", re.MULTILINE)
ROOM_HEADING = re.compile(r"^## `([\w/]+)/`")


def listed(readme: Path) -> set[str]:
    """Paths (relative to the README's folder) of the modules the README's tables name."""
    found = set()
    room = ""
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            match = ROOM_HEADING.match(line)
            room = f"{match.group(1)}/" if match else ""
        elif module := MODULE.match(line):
            found.add(room + module.group(1))
    return found


def in_tree(package: Path) -> set[str]:
    return {str(p.relative_to(package)) for p in package.rglob("*")
            if p.suffix in (".py", ".json") and p.name != "__init__.py" and "__pycache__" not in p.parts}


@pytest.mark.parametrize("package", ["stackctl", "handlers"])
def test_package_readme_lists_every_module_where_it_lives(package: str) -> None:
    readme = paths.ROOT / package / "README.md"
    if package != "stackctl" and not readme.is_file():
        pytest.skip(f"{package}/README.md is not written yet")
    names, tree = listed(readme), in_tree(paths.ROOT / package)
    assert sorted(tree - names) == [], f"{package}/README.md does not name these modules (or names them in the wrong room)"
    assert sorted(names - tree) == [], f"{package}/README.md names modules that are not there"


def test_layout_table_folders_exist() -> None:
    rows = re.findall(r"^\| `([\w./-]+/)`", (paths.ROOT / "README.md").read_text(encoding="utf-8"), re.MULTILINE)
    assert rows, "README.md has no layout table"
    assert [r for r in rows if not (paths.ROOT / r).is_dir()] == []


def test_the_readme_reader(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("## Top level\n| `paths.py` | where |\n## `serve/`: running\n| `native.py` | run |\n"
                      "## Other (to become `stackctl/deploy/`)\n| `k8s.py` | x |\n")
    assert listed(readme) == {"paths.py", "serve/native.py", "k8s.py"}
