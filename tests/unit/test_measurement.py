"""The one measurement record (loadtest/measurement.py): computed from Locust's statistics, and the
stored shapes built on it (bench/results/*.json steps, steps.csv, the SLO gate's JSON) unchanged,
so results written before it still read."""
from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.peer_results import peers_of
from bench.steps import Step, bottleneck_flags
from loadtest import capacity, slo
from loadtest.capacity_report import write_outputs
from loadtest.measurement import Measurement, from_locust, from_stats_row, nothing
from loadtest.search import Search
from stackctl import paths
from stackctl.catalog.specs import Slo

RESULTS = paths.ROOT / "bench" / "results"
BENCH_RESULTS = sorted(p for p in RESULTS.rglob("*.json") if "rounds" in json.loads(p.read_text()))
# steps.csv's header as `make capacity` has always written it.
STEPS_CSV_HEADER = ["model", "mode", "offered_rps", "users", "seconds", "requests", "failures", "status_5xx",
                    "achieved_rps", "p50_ms", "p95_ms", "p99_ms", "mean_batch_size", "breaches"]


class Entry:
    """What the record reads of a Locust StatsEntry."""

    def __init__(self, n: int, fails: int, total_rps: float, p: dict[float, int]):
        self.num_requests, self.num_failures, self.total_rps, self._p = n, fails, total_rps, p

    def get_response_time_percentile(self, q: float) -> int:
        return self._p[q]


def stored_steps(workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every step a workload's round stores: TorchServe's sweep and single steps, each peer's sweep."""
    served = workload["served"]
    yield from served["sweep"]
    for one in (served["saturation"], workload.get("batch1"), workload.get("half_load"), workload.get("floor")):
        if one:
            yield one
    for peer in peers_of(workload).values():
        yield from peer.get("sweep", [])
        if peer.get("saturation"):
            yield peer["saturation"]


def test_there_are_checked_in_bench_results_to_read():
    assert RESULTS / "latest.json" in BENCH_RESULTS


@pytest.mark.parametrize("path", BENCH_RESULTS, ids=lambda p: str(p.relative_to(RESULTS)))
def test_every_checked_in_bench_step_reads_and_writes_back_the_same(path: Path):
    results = json.loads(path.read_text())
    seen = 0
    for one_round in results["rounds"]:
        for workload in one_round["workloads"].values():
            for stored in stored_steps(workload):
                step = Step.from_json(stored)
                assert step.to_json() == stored
                assert list(step.to_json()) == list(stored)  # the keys in the order the files have them
                assert step.measured.rps == stored["rps"] and step.cpu.client_cores == stored["client_cores"]
                seen += 1
    assert seen > 0


def test_a_bench_step_older_than_steal_time_reads_with_none_stolen():
    stored = {"target": "torchserve", "mode": "closed", "users": 8, "offered_rps": None, "seconds": 2.0,
              "requests": 100, "failures": 0, "rps": 50.0, "p50_ms": 10, "p95_ms": 20, "p99_ms": 30,
              "client_cores": 0.2, "server_cores": 1.5, "machine_busy_cores": 1.8, "first_failure": None, "flags": []}
    step = Step.from_json(stored)
    assert step.cpu.steal_cores == 0.0 and step.measured.status_5xx == 0
    assert step.to_json() == {**stored, "status_5xx": 0, "steal_cores": 0.0}


def test_flags_name_the_client_the_machine_and_the_hypervisor():
    step = Step.from_json({"target": "t", "mode": "closed", "users": 1, "offered_rps": None, "seconds": 1.0,
                           "requests": 1, "failures": 0, "rps": 1.0, "p50_ms": 1, "p95_ms": 1, "p99_ms": 1,
                           "client_cores": 0.9, "server_cores": 0.7, "machine_busy_cores": 1.95, "steal_cores": 0.2})
    flags = bottleneck_flags(step.cpu, 2)
    assert [f.split(":")[0] for f in flags] == ["client-bound", "CPU stolen", "cores saturated"]


def test_a_timed_window_rates_its_requests_over_its_own_length():
    m = from_locust("digits", Entry(50, 1, 999.0, {0.5: 4, 0.95: 9, 0.99: 12}), seconds=2.004, mode="open",
                    users=3, offered_rps=25.0, status_5xx=1, first_failure="1x boom")
    assert m == Measurement(model="digits", mode="open", users=3, offered_rps=25.0, seconds=2.0, requests=50,
                            failures=1, status_5xx=1, rps=24.95, p50_ms=4, p95_ms=9, p99_ms=12,
                            first_failure="1x boom")
    assert m.error_ratio == 0.02


def test_a_whole_run_takes_locusts_rate_and_an_empty_window_has_no_percentiles():
    assert from_locust("m", Entry(10, 0, 3.5, {0.5: 1, 0.95: 2, 0.99: 3})).rps == 3.5
    empty = from_locust("m", Entry(0, 0, 0.0, {}), seconds=1.0)
    assert (empty.requests, empty.p50_ms, empty.p95_ms, empty.p99_ms, empty.error_ratio) == (0, None, None, None, 0.0)
    assert nothing("m") == from_locust("m", Entry(0, 0, 0.0, {}))


def test_a_locust_csv_row_reads_with_its_missing_percentiles_as_none():
    row = {"Request Count": "7", "Failure Count": "1", "Requests/s": "1.5", "50%": "N/A", "95%": "", "99%": "40"}
    assert from_stats_row("m", row) == Measurement(model="m", requests=7, failures=1, rps=1.5, p50_ms=None,
                                                   p95_ms=None, p99_ms=40.0)


def test_a_gate_verdict_written_before_the_shared_record_still_reads():
    stored = [{"observed": {"model": "digits", "requests": 105, "failures": 1, "rps": 10.5, "p50_ms": 5.0,
                            "p95_ms": 9.0, "p99_ms": 12.0},
               "slo": {"p95_ms": 100.0, "p99_ms": 200.0, "max_error_ratio": 0.01}, "breaches": [], "ok": True}]
    verdicts = slo.from_json(stored)
    assert verdicts[0].observed.model == "digits" and verdicts[0].ok
    assert slo.to_json(verdicts) == stored


def test_capacity_steps_csv_keeps_its_columns(tmp_path: Path):
    row = {"model": "m", "mode": "open", "offered_rps": 10, "users": 5, "seconds": 5, "requests": 50, "failures": 0,
           "status_5xx": 0, "achieved_rps": 10, "p50_ms": 5, "p95_ms": 50, "p99_ms": 80}
    step = capacity.Step(Measurement.from_json(row, rps_key="achieved_rps"), 1.5, ["p95"])
    assert step.to_row() == {**row, "mean_batch_size": 1.5, "breaches": "p95"}
    write_outputs(tmp_path, [capacity.Result("m", Search(10.0, 11.0, True, "bracketed"), None, None, [step])],
                  {"m": Slo(100, 200, 0.01)})
    with (tmp_path / "steps.csv").open(newline="") as handle:
        assert next(csv.reader(handle)) == STEPS_CSV_HEADER
