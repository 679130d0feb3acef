"""`make soak` against the shared server: the same code, a one-minute run, then the capacity
search that `make soak` runs when no capacity report exists."""
from __future__ import annotations

import json

import pytest

from loadtest import soak


@pytest.mark.slow
def test_one_minute_soak_has_no_errors_and_flat_worker_memory(torchserve, tmp_path) -> None:
    # The suite shares this host's 2 cores with other tests: a fixed, modest rate rather than half
    # of a capacity measured on an idle host.
    rates = {"digits": 2.0, "langid": 2.0}
    summary = soak.run_soak(torchserve.inference_url, torchserve.proc.pid, rates, duration=60.0,
                            rate_source="fixed by the test")
    soak.write_report(summary, tmp_path)
    print(json.dumps({k: getattr(summary, k) for k in ("requests", "errors", "achieved_rps", "p95_ms",
                                                       "rss_start_mb", "rss_end_mb", "rss_growth")}))
    assert set(summary.achieved_rps) == set(rates) and all(summary.achieved_rps.values())  # both models loaded
    assert summary.ok, summary.failures + summary.error_examples
    assert json.loads((tmp_path / "summary.json").read_text())["ok"] is True


@pytest.mark.slow
def test_without_a_report_the_soak_measures_capacity_and_plans_half(torchserve, tmp_path) -> None:
    from loadtest.capacity import Plan

    # a short search: what is tested is that the soak gets its rates from a measurement it ran
    plan = Plan(budget=12, step_seconds=1, warmup_seconds=0.5, estimate_users=4)
    assert soak.latest_capacity(tmp_path) is None
    measured = soak.measure_capacity(torchserve.inference_url, f"{torchserve.metrics_url}/metrics", ["digits"],
                                     plan, reports=tmp_path)
    assert measured[1]["digits"] > 0
    found = soak.latest_capacity(tmp_path)
    assert found is not None and found[1] == measured[1]          # the next soak reuses it
    rates, source = soak.plan_rates(["digits"], 0.5, found)
    assert rates["digits"] == max(soak.MIN_RPS, round(measured[1]["digits"] / 2, 2)) and "capacity" in source
