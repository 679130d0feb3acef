"""`make soak`'s rate plan and guards (no server)."""
from __future__ import annotations

import pytest

from stackctl import soak


def test_rates_come_from_the_newest_capacity_report(tmp_path) -> None:
    for stamp, digits in (("20240101-000000", 100), ("20250101-000000", 40)):
        folder = tmp_path / f"capacity-{stamp}"
        folder.mkdir()
        (folder / "capacity.csv").write_text(f"model,max_rps_within_slo\ndigits,{digits}\nlangid,0\n")
    capacity = soak.latest_capacity(tmp_path)
    assert capacity is not None and capacity[0].parent.name == "capacity-20250101-000000"
    rates, source = soak.plan_rates(["digits", "langid"], None, 0.5, capacity)
    # half of 40 req/s, shared by two models; a model without a measurement gets the fallback
    assert rates == {"digits": 10.0, "langid": soak.FALLBACK_RPS} and "capacity" in source


def test_without_a_report_the_fallback_rate_is_used_and_said(tmp_path) -> None:
    assert soak.latest_capacity(tmp_path) is None
    rates, source = soak.plan_rates(["digits"], None, 0.5, None)
    assert rates == {"digits": soak.FALLBACK_RPS} and "fallback" in source
    assert soak.plan_rates(["digits"], 3.0, 0.5, None)[0] == {"digits": 3.0}


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("90s", 90), ("2h", 7200), ("45", 45)])
def test_durations(text: str, seconds: float) -> None:
    assert soak.parse_duration(text) == seconds


@pytest.mark.parametrize("url", ["http://10.0.0.5:8080", "http://example.com:8080"])
def test_soak_refuses_hosts_beyond_loopback(url: str) -> None:
    with pytest.raises(SystemExit):
        soak.require_loopback(url)
    soak.require_loopback("http://127.0.0.1:8080")
    soak.require_loopback("http://localhost:8080")
