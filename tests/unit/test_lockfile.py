"""requirements.lock against requirements.txt: the drift test, and the lock's own shape.

The lock (scripts/lock.sh, `make lock`) must pin exactly requirements.txt's direct pins at the same
versions, plus everything they pull in, each package with its sha256 hashes, so that
`pip install --require-hashes -r requirements.lock` (make venv, the image) installs what
requirements.txt says and nothing unhashed. Regenerate it with `make lock` after changing a pin.
"""
from __future__ import annotations

import pytest
from packaging.requirements import Requirement

from stackctl import paths
from stackctl.deploy import lockfile

LOCK = paths.ROOT / "requirements.lock"
DIRECT = "-r requirements.txt"
# Each lock and the pins it is made from: the stack's, and the host-side tool venvs' (make
# audit-tools, make sbom), whose input lists are already complete (pip freeze of a fresh venv).
LOCKS = {"requirements.lock": "requirements.txt", "audit/requirements.lock": "audit/requirements.txt",
         "audit/sbom-requirements.lock": "audit/sbom-requirements.txt"}


def direct_pins(source: str = "requirements.txt") -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (paths.ROOT / source).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            specs = list(requirement.specifier)
            assert len(specs) == 1 and specs[0].operator == "==", f"{source}: {line} is not an == pin"
            pins[lockfile.canonical(requirement.name)] = specs[0].version
    return pins


@pytest.fixture(scope="module")
def entries() -> dict[str, lockfile.Entry]:
    return lockfile.parse(LOCK.read_text())


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_holds_exactly_the_direct_pins_at_their_versions(lock: str) -> None:
    entries = lockfile.parse((paths.ROOT / lock).read_text())
    direct = {name: entry.version for name, entry in entries.items() if f"-r {LOCKS[lock]}" in entry.via}
    assert direct == direct_pins(LOCKS[lock]), f"{lock} is not {LOCKS[lock]}'s lock: run `make lock`"


@pytest.mark.parametrize("lock", LOCKS)
def test_every_package_has_a_sha256_hash_and_is_pinned_once(lock: str) -> None:
    entries = lockfile.parse((paths.ROOT / lock).read_text())
    assert len(entries) >= len(direct_pins(LOCKS[lock]))
    for name, entry in entries.items():
        assert entry.hashes, f"{lock}: {name}=={entry.version}: no hash"
        assert all(len(h) == 64 for h in entry.hashes)
        assert len(set(entry.hashes)) == len(entry.hashes), f"{lock}: {name}: a hash listed twice"


@pytest.mark.parametrize("lock", LOCKS)
def test_every_line_is_a_pin_a_hash_or_a_comment(lock: str) -> None:
    # parse() raises on anything else (an option line, an unhashed URL, a marker it cannot read).
    text = (paths.ROOT / lock).read_text()
    lockfile.parse(text)
    pins = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert all(lockfile.PIN.match(line) and line.endswith("\\") for line in pins), "every pin continues with its hashes"
    assert not any(";" in line for line in pins), "resolved for one platform: no markers"


def test_the_stack_lock_pulls_in_more_than_its_direct_pins(entries) -> None:
    assert len(entries) > len(direct_pins())


@pytest.mark.parametrize("lock", LOCKS)
def test_the_lock_is_closed(lock: str) -> None:
    # Every package a locked package is required by is locked too; the installer (pip) is the
    # one package left out on purpose (scripts/lock.sh says why).
    entries = lockfile.parse((paths.ROOT / lock).read_text())
    for name, entry in entries.items():
        assert entry.via, f"{lock}: {name}: no `# via`, nothing needs it"
        for parent in entry.via:
            assert parent == f"-r {LOCKS[lock]}" or parent in entries, f"{lock}: {name}: via {parent}, not locked"
    assert "pip" not in entries


def test_select_takes_the_named_and_what_they_pull_in() -> None:
    text = """a==1 \\
    --hash=sha256:{}
    # via -r requirements.txt
b==2 \\
    --hash=sha256:{}
    # via
    #   a
    #   c
c==3 \\
    --hash=sha256:{}
    # via -r requirements.txt
d==4 \\
    --hash=sha256:{}
    # via b
""".format(*(str(i) * 64 for i in range(4)))
    assert lockfile.closure(lockfile.parse(text), ["a"]) == ["a", "b", "d"]
    assert lockfile.closure(lockfile.parse(text), ["C"]) == ["b", "c", "d"]
    selected = lockfile.select(text, ["c"])
    assert selected.startswith("b==2 \\\n") and "c==3" in selected and "a==1" not in selected
    with pytest.raises(KeyError, match="not in the lock: e"):
        lockfile.closure(lockfile.parse(text), ["e"])
    with pytest.raises(ValueError, match="not a lock line"):
        lockfile.parse("a==1\n--index-url https://example.org\n")
