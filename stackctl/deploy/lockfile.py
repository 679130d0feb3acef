"""requirements.lock, the hash-pinned lock of requirements.txt: read it, and select what one image installs.

The lock is `uv pip compile --generate-hashes` output for Linux x86_64 / CPython 3.11 (scripts/lock.sh):
every package once, `name==version` and its `--hash=sha256:` lines, then `# via` lines naming the
packages that require it (`-r requirements.txt` for a direct pin). Resolved for one platform, it
has no markers, so "X is needed" is exactly "X is named, or something needed names X in its via".

Each image stage installs a few of the pinned names, not the whole lock (pytest, mypy and kubectl
have no place in an image): `python lockfile.py select NAME... < requirements.lock` prints the
entries of those names and everything they pull in, hashes included, for
`pip install --require-hashes -r`. pip then refuses any package it needs that the selection lacks,
so a wrong selection fails the build instead of installing something unpinned. Standard library
only: the Dockerfile runs it before anything is installed.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?:\s*\\)?$")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
VIA_ONE = re.compile(r"^#\s+via\s+(\S.*)$")
VIA_MORE = re.compile(r"^#\s{3,}(\S.*)$")


def canonical(name: str) -> str:
    """PEP 503 normalized name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Entry:
    name: str
    version: str
    hashes: list[str] = field(default_factory=list)
    via: set[str] = field(default_factory=set)  # canonical names, and "-r <file>" for a direct pin
    lines: list[str] = field(default_factory=list)  # the entry as written, for `select`


def parse(text: str) -> dict[str, Entry]:
    """Entries by canonical name. A line that is none of pin, hash or comment is an error."""
    entries: dict[str, Entry] = {}
    current: Entry | None = None
    in_via = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if pin := PIN.match(line):
            current = Entry(canonical(pin[1]), pin[2], lines=[raw])
            if current.name in entries:
                raise ValueError(f"{pin[1]}: pinned twice")
            entries[current.name] = current
            in_via = False
        elif current is not None and (digest := HASH.search(line)) and line.startswith("--hash="):
            current.hashes.append(digest[1])
            current.lines.append(raw)
        elif line.startswith("#"):
            in_via = parse_via(line, current, in_via)
            if current is not None:
                current.lines.append(raw)
        else:
            raise ValueError(f"not a lock line: {raw!r}")
    return entries


def parse_via(line: str, current: Entry | None, in_via: bool) -> bool:
    """Record a `# via` line on the current entry; returns whether a via list continues."""
    if current is None:
        return False
    if line == "# via":
        return True
    if one := VIA_ONE.match(line):
        current.via.add(via_name(one[1]))
        return False
    if in_via and (more := VIA_MORE.match(line)):
        current.via.add(via_name(more[1]))
        return True
    return False


def via_name(text: str) -> str:
    text = text.strip()
    return text if text.startswith("-") else canonical(text.split("[", 1)[0])


def closure(entries: dict[str, Entry], names: list[str]) -> list[str]:
    """The named packages and everything they require, in lock order."""
    needed = {canonical(n) for n in names}
    missing = sorted(needed - entries.keys())
    if missing:
        raise KeyError(f"not in the lock: {', '.join(missing)}")
    grew = True
    while grew:
        added = {name for name, entry in entries.items() if name not in needed and entry.via & needed}
        needed |= added
        grew = bool(added)
    return [name for name in entries if name in needed]


def select(text: str, names: list[str]) -> str:
    entries = parse(text)
    return "\n".join(line for name in closure(entries, names) for line in entries[name].lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "select":
        print("usage: lockfile.py select NAME... < requirements.lock", file=sys.stderr)
        return 2
    try:
        sys.stdout.write(select(sys.stdin.read(), argv[1:]))
    except (KeyError, ValueError) as err:
        print(f"lockfile: {err.args[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
