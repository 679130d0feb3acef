"""`make soak` against the shared server: the same code, a one-minute run, then the capacity
search that `make soak` runs when no capacity report exists.

Both run in a child process, as `make soak` does: the load driver imports Locust, whose gevent
monkey-patching must not leak into the other tests of this pytest process.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from loadtest import soak
from stackctl import paths
from stackctl.catalog.specs import load_specs


def run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, *args], cwd=paths.ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    print(proc.stdout[-4000:], proc.stderr[-3000:], sep="\n")  # shown by pytest on failure
    return proc


@pytest.mark.slow
def test_one_minute_soak_has_no_errors_and_flat_worker_memory(torchserve, tmp_path) -> None:
    # The suite shares this host's 2 cores with other tests: a fixed, modest rate rather than half
    # of a capacity measured on an idle host.
    proc = run(["-m", "loadtest.soak", "--duration", "60s", "--rate", "2", "--host", torchserve.inference_url,
                "--pid", str(torchserve.proc.pid), "--out", str(tmp_path)], timeout=180)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert proc.returncode == 0, summary["failures"] + summary["error_examples"]
    assert summary["ok"] is True and summary["errors"] == 0
    assert set(summary["achieved_rps"]) == {s.name for s in load_specs()} and all(summary["achieved_rps"].values())
    assert "PASS" in (tmp_path / "summary.md").read_text()


MEASURE = """
import locust, sys
from pathlib import Path
from loadtest import soak
from loadtest.capacity import Plan
host, metrics, reports = sys.argv[1:4]
soak.measure_capacity(host, metrics, ["digits"], Plan(budget=12, step_seconds=1, warmup_seconds=0.5, estimate_users=4),
                      reports=Path(reports))
"""


@pytest.mark.slow
def test_without_a_report_the_soak_measures_capacity_and_plans_half(torchserve, tmp_path) -> None:
    # a short search: what is tested is that the soak gets its rates from a measurement it ran
    assert soak.latest_capacity(tmp_path) is None
    proc = run(["-c", MEASURE, torchserve.inference_url, f"{torchserve.metrics_url}/metrics", str(tmp_path)], 120)
    assert proc.returncode == 0
    found = soak.latest_capacity(tmp_path)                       # the next soak reuses it
    assert found is not None and found[1]["digits"] > 0
    rates, source = soak.plan_rates(["digits"], 0.5, found)
    assert rates["digits"] == max(soak.MIN_RPS, round(found[1]["digits"] / 2, 2)) and "capacity" in source
