"""`duplicates` on the non-test tree reports nothing, except the pairs allowed (with a reason) in
tests/unit/duplicates-allowed.txt.

A repeated block is a fact written twice: a change must then be made in both places, and the next
feature adds a third copy (issue #28). `duplicates` (a command on the development machines, not a
Python package) pairs runs of six or more identical or same-shape lines; this test keeps the pairs
whose two sides both lie in the non-test packages. Where the command is not installed (a fresh CI
machine or a user's clone need not have it) the test is skipped, saying so.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stackctl import paths

NON_TEST_PACKAGES = ("handlers", "stackctl", "bench", "loadtest", "models")
ALLOWED = Path(__file__).with_name("duplicates-allowed.txt")
ROW = re.compile(r"^D\d+ (?P<a>\S+?):\d+-\d+ ~ (?P<b>\S+?):\d+-\d+")


def non_test(path: str) -> bool:
    return path.split("/")[0] in NON_TEST_PACKAGES


def allowed_pairs() -> dict[frozenset[str], str]:
    """The allow-list: {pair of paths: reason}."""
    pairs = {}
    for number, line in enumerate(ALLOWED.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = re.match(r"^(\S+) ~ (\S+)\s+(.*)$", line)
        assert match and match.group(3).strip(), f"{ALLOWED.name}:{number}: want `<path> ~ <path>  <reason>`: {line!r}"
        pairs[frozenset(match.group(1, 2))] = match.group(3).strip()
    return pairs


def reported_pairs(output: str) -> dict[frozenset[str], str]:
    """{pair of paths: the tool's row} for the rows whose both sides are non-test files."""
    rows = {}
    for line in output.splitlines():
        match = ROW.match(line)
        if match and non_test(match["a"]) and non_test(match["b"]):
            rows.setdefault(frozenset(match.group("a", "b")), line)
    return rows


@pytest.fixture(scope="module")
def duplicates_output() -> str:
    tool = shutil.which("duplicates")
    if tool is None:
        pytest.skip("the `duplicates` command is not installed here (it is a development-machine tool; "
                    "CI machines and users' clones may lack it): the non-test tree was not checked for repeats")
    proc = subprocess.run([tool, "--repo", str(paths.ROOT), "--most", "200", "--seconds", "120"],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "incomplete:" not in proc.stdout, proc.stdout
    return proc.stdout


def test_no_duplicates_outside_the_allow_list(duplicates_output) -> None:
    unexplained = [row for pair, row in reported_pairs(duplicates_output).items() if pair not in allowed_pairs()]
    assert unexplained == [], ("write these once (a shared helper), or list the pair with its reason in "
                               f"{ALLOWED.name}: {unexplained}")


def test_every_allowed_pair_is_still_reported(duplicates_output) -> None:
    stale = [" ~ ".join(sorted(pair)) for pair in allowed_pairs() if pair not in reported_pairs(duplicates_output)]
    assert stale == [], f"remove these pairs from {ALLOWED.name}: the tool no longer reports them: {stale}"


def test_rows_are_read() -> None:
    row = "D5 stackctl/serve/native.py:112-121 ~ stackctl/serve/native.py:120-129 shape boilerplate"
    other = "D2 tests/unit/test_a.py:83-88 ~ stackctl/b.py:27-32 shape (+1 more run)"
    assert reported_pairs(f"2 pairs of places\n{row}\n{other}\n") == {frozenset({"stackctl/serve/native.py"}): row}
