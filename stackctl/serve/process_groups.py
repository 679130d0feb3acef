"""Process groups as /proc shows them: what NativeStack.stop needs to know when a group is gone
(members that are zombies of ours do not count; reap() collects them)."""
from __future__ import annotations

import os
from pathlib import Path


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Members may all be zombies of ours; reaping them is done by reap.
    return any(_pgid_of(p) == pgid and state_of(p) != "Z" for p in _pids())


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def _pgid_of(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[2]) if fields else None


def state_of(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[0] if fields else None


def reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
