"""The 1-minute version of `make soak` against the shared server: the same code, a shorter run."""
from __future__ import annotations

import json

import pytest

from stackctl import soak


@pytest.mark.slow
def test_one_minute_soak_has_no_errors_and_flat_worker_memory(torchserve, tmp_path) -> None:
    # The suite shares this host's 2 cores with other tests, so it uses the documented fallback
    # rate rather than half of a capacity measured on an idle host.
    rates, source = soak.plan_rates(["digits", "langid"], None, 0.5, None)
    summary = soak.run_soak(torchserve.inference_url, torchserve.proc.pid, rates, duration=60.0,
                            rate_source=source, max_in_flight=8)
    soak.write_report(summary, tmp_path)
    print(json.dumps({k: getattr(summary, k) for k in ("requests", "errors", "achieved_rps", "p95_ms",
                                                       "rss_start_mb", "rss_end_mb", "rss_growth")}))
    assert summary.requests >= 0.8 * 60 * sum(rates.values()), summary
    assert summary.ok, summary.failures + summary.error_examples
    assert json.loads((tmp_path / "summary.json").read_text())["ok"] is True
