"""One place lists every command (stackctl/commands.py): `python -m stackctl --help` shows it, and
`python -m stackctl run <name>` runs each. These tests keep the table and the tree in step: every
module with a `__main__` block and every `-m` the Makefile calls is listed, every row names a real
entry point, and running by name is running the module."""
from __future__ import annotations

import ast
import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stackctl import commands, paths
from stackctl.__main__ import main

PACKAGES = ("stackctl", "bench", "loadtest")
MAKEFILES = [paths.ROOT / "Makefile", *sorted((paths.ROOT / "mk").glob("*.mk"))]


def has_main_block(path: Path) -> bool:
    """Whether the module runs something under `if __name__ == "__main__":`."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"
                and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in node.test.comparators)):
            return True
    return False


def module_of(path: Path) -> str:
    parts = path.relative_to(paths.ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] in ("__init__", "__main__") else parts)


def entry_points() -> set[str]:
    """Modules of stackctl, bench and loadtest that `python -m` runs (stackctl itself aside: its
    subcommands are main()'s)."""
    found = {module_of(p) for package in PACKAGES for p in (paths.ROOT / package).rglob("*.py") if has_main_block(p)}
    return found - {"stackctl"}


def make_modules() -> dict[str, list[str]]:
    """{module: [the Makefile lines that run it with -m]} for the project's own modules."""
    found: dict[str, list[str]] = {}
    for makefile in MAKEFILES:
        for line in makefile.read_text(encoding="utf-8").splitlines():
            for module in re.findall(r"-m\s+([A-Za-z_][\w.]*)", line):
                if module.split(".")[0] in PACKAGES:
                    found.setdefault(module, []).append(f"{makefile.name}: {line.strip()}")
    return found


def test_every_entry_point_is_listed_and_every_row_is_one() -> None:
    listed = {c.module for c in commands.COMMANDS}
    assert sorted(entry_points() - listed) == [], "add these modules to stackctl/commands.py's COMMANDS"
    assert sorted(listed - entry_points()) == [], "these rows name no module with a __main__ block"


def test_every_module_the_makefile_runs_is_listed() -> None:
    listed = {c.module for c in commands.COMMANDS} | {"stackctl"}
    unlisted = {m: lines for m, lines in make_modules().items() if m not in listed}
    assert unlisted == {}, "the Makefile runs these; list them in stackctl/commands.py"


def test_the_makefile_runs_only_stackctl_subcommands_that_exist() -> None:
    subcommands = {"models", "serve", "stop", "status", "ready", "set-default", "run"}
    called = {m.group(1) for makefile in MAKEFILES
              for m in re.finditer(r"-m\s+stackctl\s+([a-z-]+)", makefile.read_text(encoding="utf-8"))}
    assert called and called <= subcommands


def test_names_are_unique_and_make_targets_exist() -> None:
    assert len(commands.BY_NAME) == len(commands.COMMANDS)
    targets = {m.group(1) for makefile in MAKEFILES
               for m in re.finditer(r"^([A-Za-z0-9_.-]+):", makefile.read_text(encoding="utf-8"), re.MULTILINE)}
    assert [c.make for c in commands.COMMANDS if c.make and c.make.removeprefix("make ") not in targets] == []


def test_help_lists_every_command() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = out.getvalue()
    for sub in ("models", "serve", "stop", "status", "ready", "set-default", "run"):
        assert sub in text
    for c in commands.COMMANDS:
        assert re.search(rf"^  {re.escape(c.name)} .*\[-m {re.escape(c.module)}\]$", text, re.MULTILINE), c


def test_run_by_name_is_running_the_module() -> None:
    def python(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=paths.ROOT, capture_output=True, text=True,
                              timeout=120, check=False)

    direct = python("-m", "stackctl.deploy.k8s", "list")
    by_name = python("-m", "stackctl", "run", "k8s", "list")
    assert (by_name.returncode, by_name.stdout) == (direct.returncode, direct.stdout) == (0, direct.stdout)
    # the module's own options and exit status pass through (argparse: usage errors exit 2)
    wrong = python("-m", "stackctl", "run", "k8s", "render", "--no-such-option")
    wrong_direct = python("-m", "stackctl.deploy.k8s", "render", "--no-such-option")
    assert (wrong.returncode, wrong.stderr) == (wrong_direct.returncode, wrong_direct.stderr)
    assert wrong.returncode == 2 and "--no-such-option" in wrong.stderr
