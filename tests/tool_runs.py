"""Running the load tools as a user does (`python -m loadtest.run`, `-m bench.run`, ...), bounded in
time, with their output kept for pytest to show when a test fails."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from stackctl import paths

# Latency limits are not what these runs test (the CI host is 2 shared cores); errors are.
LATENCY_ANY = "*.p95_ms=60000,*.p99_ms=60000"


def run(args: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, *args], cwd=paths.ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "LOADTEST_SHAPE": "", **(env or {})})
    print(proc.stdout[-6000:], proc.stderr[-3000:], sep="\n")  # shown by pytest on failure
    return proc


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
