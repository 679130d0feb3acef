"""`make capacity`'s step verdicts, batch-size arithmetic and report files (no server); the search
itself: test_loadtest_search.py."""
from __future__ import annotations

import csv

from loadtest import capacity, server_metrics
from loadtest.capacity_report import write_outputs
from loadtest.measurement import Measurement
from loadtest.search import Search
from stackctl.catalog.specs import Slo, get_spec

METRICS = """# HELP handler_batch_size Items per inference call
# TYPE handler_batch_size histogram
handler_batch_size_bucket{ModelName="digits",Hostname="h",le="1.0"} 3.0
handler_batch_size_sum{ModelName="digits",Hostname="h"} 40.0
handler_batch_size_count{ModelName="digits",Hostname="h"} 10.0
handler_batch_size_sum{ModelName="langid",Hostname="h"} 7.0
handler_batch_size_count{Hostname="h",ModelName="langid"} 7.0
"""


def test_metric_total_and_mean_batch():
    assert server_metrics.metric_total(METRICS, "handler_batch_size_sum", {"ModelName": "digits"}) == 40.0
    assert server_metrics.metric_total(METRICS, "handler_batch_size_count", {"ModelName": "langid"}) == 7.0
    assert server_metrics.metric_total(METRICS, "handler_batch_size_sum", {"ModelName": "other"}) is None
    assert server_metrics.mean_batch((40.0, 10.0), (100.0, 25.0)) == 4.0
    assert server_metrics.mean_batch((40.0, 10.0), (40.0, 10.0)) is None
    assert server_metrics.mean_batch(None, (1.0, 1.0)) is None
    assert server_metrics.default_metrics_url("http://10.1.2.3:8080") == "http://10.1.2.3:8082/metrics"


def step(**kw):
    """A step as steps.csv stores it (the measurement's fields under capacity's names)."""
    base = {"model": "m", "mode": "open", "offered_rps": 10, "users": 5, "seconds": 5, "requests": 50, "failures": 0,
            "status_5xx": 0, "achieved_rps": 10, "p50_ms": 5, "p95_ms": 50, "p99_ms": 80, "mean_batch_size": 1.5}
    row = {**base, **kw}
    measured = Measurement.from_json(row, rps_key="achieved_rps")
    return capacity.Step(measured, row["mean_batch_size"], row.get("breaches", []))


def test_judge_step():
    limit = Slo(100, 200, 0.01)
    assert capacity.judge_step(step(), limit) == []
    assert capacity.judge_step(step(p95_ms=150), limit) == ["p95 150 ms > 100 ms"]
    assert capacity.judge_step(step(status_5xx=1, failures=1, requests=1000), limit) == ["1 answers with HTTP 5xx"]
    assert capacity.judge_step(step(achieved_rps=9), limit) == ["achieved 9.0 of 10 req/s offered"]
    assert capacity.judge_step(step(achieved_rps=9.6), limit) == []   # a window's edge, not a backlog
    assert "error ratio" in capacity.judge_step(step(failures=5), limit)[0]
    assert capacity.judge_step(step(requests=0, p95_ms=None, achieved_rps=0), limit)[0] == "no requests completed"


def result(search: Search) -> capacity.Result:
    estimate = step(mode="closed", offered_rps=None, users=128, achieved_rps=12.0, p95_ms=900)
    steps = [estimate, step(), step(offered_rps=11, achieved_rps=10, p95_ms=300, breaches=["p95"])]
    return capacity.Result("m", search, estimate, steps[1], steps)


def test_a_bracketed_capacity_is_a_number(tmp_path):
    slos = {"m": Slo(100, 200, 0.01)}
    markdown = write_outputs(tmp_path, [result(Search(10.0, 10.4, True, "bracketed within 5%"))], slos)
    assert "| m | 10.0 | 10.4 | 12.0 | 5 | 50 | 80 | 1.50 | 100 | bracketed within 5% |" in markdown
    rows = list(csv.DictReader((tmp_path / "capacity.csv").open()))
    assert rows[0]["capacity_rps"] == "10.0" and rows[0]["complete"] == "true" and rows[0]["mean_batch_size"] == "1.50"
    assert [r["mode"] for r in csv.DictReader((tmp_path / "steps.csv").open())] == ["closed", "open", "open"]


def test_a_search_cut_short_by_its_budget_is_reported_as_a_lower_bound(tmp_path):
    slos = {"m": Slo(100, 200, 0.01)}
    markdown = write_outputs(tmp_path, [result(Search(10.0, None, False, "time budget used"))], slos)
    assert "| m | ≥ 10.0 | - |" in markdown and "lower bound" in markdown
    row = next(csv.DictReader((tmp_path / "capacity.csv").open()))
    assert row["capacity"] == "≥ 10.0" and row["complete"] == "false"


def test_a_streaming_model_reports_concurrent_streams_and_chunks_per_second(tmp_path):
    slos = {"m": Slo(100, 200, 0.01)}
    streamed = result(Search(10.0, 10.4, True, "bracketed within 5%"))
    streamed.streaming = True
    markdown = write_outputs(tmp_path, [streamed], slos)
    assert markdown.splitlines()[0].endswith("| concurrent streams |")
    assert "| m | 10.0 | 10.4 | 12.0 | 5 | 50 | 80 | 1.50 | 100 | bracketed within 5% | 5 |" in markdown
    assert "m: a request is one chunk of a stream, so req/s are chunks/s" in markdown
    row = next(csv.DictReader((tmp_path / "capacity.csv").open()))
    assert row["streams"] == row["users"] == "5" and row["chunks_per_s"] == "10.0"


def test_a_stateless_model_has_no_stream_columns(tmp_path):
    markdown = write_outputs(tmp_path, [result(Search(10.0, 10.4, True, "bracketed"))], {"m": Slo(100, 200, 0.01)})
    assert "concurrent streams" not in markdown
    row = next(csv.DictReader((tmp_path / "capacity.csv").open()))
    assert row["streams"] == "-" and row["chunks_per_s"] == "-"


def test_a_streaming_model_is_searched_with_no_more_streams_than_a_worker_holds():
    """Each user of a streaming model holds a stream; more than max_live_per_worker would be refused
    (429) as soon as TorchServe put them on one worker, and the search would measure refusals."""
    stream = get_spec("langstream")
    assert capacity.concurrency(stream, capacity.Plan(estimate_users=128)) == stream.sequence.max_live_per_worker
    assert capacity.concurrency(stream, capacity.Plan(estimate_users=4)) == 4
    assert capacity.concurrency(get_spec("digits"), capacity.Plan(estimate_users=128)) == 128
