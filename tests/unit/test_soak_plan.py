"""`make soak`'s rate plan and guards (no server)."""
from __future__ import annotations

import pytest

from loadtest import soak


def write_report(folder, rows: str) -> None:
    folder.mkdir()
    (folder / "capacity.csv").write_text(rows)


def test_rates_come_from_the_newest_capacity_report(tmp_path) -> None:
    for stamp, digits in (("20240101-000000", 100), ("20250101-000000", 40)):
        write_report(tmp_path / f"capacity-{stamp}", f"model,capacity,capacity_rps\ndigits,{digits},{digits}\nlangid,≥ 80,80\n")
    capacity = soak.latest_capacity(tmp_path)
    assert capacity is not None and capacity[0].parent.name == "capacity-20250101-000000"
    rates, source = soak.plan_rates(["digits", "langid"], 0.5, capacity)
    assert rates == {"digits": 10.0, "langid": 20.0} and "capacity" in source  # half, shared by two models


def test_reports_from_the_old_budget_bound_search_are_not_used(tmp_path) -> None:
    # its "max within SLO" was often the point where its time budget ran out (issue 20)
    write_report(tmp_path / "capacity-20240101-000000", "model,max_rps_within_slo\ndigits,128.6\n")
    assert soak.latest_capacity(tmp_path) is None


def test_a_model_without_a_capacity_is_refused_not_guessed(tmp_path) -> None:
    write_report(tmp_path / "capacity-20250101-000000", "model,capacity,capacity_rps\ndigits,40,40\nlangid,< 5.0,0\n")
    capacity = soak.latest_capacity(tmp_path)
    with pytest.raises(ValueError, match="langid"):
        soak.plan_rates(["digits", "langid"], 0.5, capacity)


def test_a_tiny_share_still_sends_some_load(tmp_path) -> None:
    write_report(tmp_path / "capacity-20250101-000000", "model,capacity,capacity_rps\ndigits,0.6,0.6\n")
    rates, _ = soak.plan_rates(["digits"], 0.5, soak.latest_capacity(tmp_path))
    assert rates == {"digits": soak.MIN_RPS}


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("90s", 90), ("2h", 7200), ("45", 45)])
def test_durations(text: str, seconds: float) -> None:
    assert soak.parse_duration(text) == seconds


@pytest.mark.parametrize("url", ["http://10.0.0.5:8080", "http://example.com:8080"])
def test_soak_refuses_hosts_beyond_loopback(url: str) -> None:
    with pytest.raises(SystemExit):
        soak.require_loopback(url)
    soak.require_loopback("http://127.0.0.1:8080")
    soak.require_loopback("http://localhost:8080")


def test_a_run_of_some_models_does_not_hide_the_others(tmp_path) -> None:
    """`make capacity CAPACITY_ARGS="--models langstream"` after a full run: every model keeps its
    newest figure (chaos and soak failed with "has no capacity for digits, langid" before)."""
    write_report(tmp_path / "capacity-20250101-000000", "model,capacity,capacity_rps\ndigits,40,40\nlangid,80,80\n")
    write_report(tmp_path / "capacity-20250102-000000", "model,capacity,capacity_rps\nlangstream,900,900\nlangid,< 5.0,0\n")
    table, rates = soak.latest_capacity(tmp_path)
    assert table.parent.name == "capacity-20250102-000000"
    assert rates == {"digits": 40.0, "langid": 0.0, "langstream": 900.0}   # langid's newest is 0: it stands
