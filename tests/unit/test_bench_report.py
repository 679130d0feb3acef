"""Ratios, targets and the Markdown table from a results dict (no servers)."""
from __future__ import annotations

import copy

from bench.report import markdown, problems, ratios, summarize, targets


def _step(users: int, rps: float, p50: float, p99: float, mode: str = "closed", client: float = 0.2) -> dict:
    return {"target": "t", "mode": mode, "users": users, "offered_rps": rps if mode == "open" else None,
            "seconds": 5, "requests": int(rps * 5), "failures": 0, "status_5xx": 0, "rps": rps, "p50_ms": p50,
            "p95_ms": p99 * 0.9, "p99_ms": p99, "client_cores": client, "server_cores": 1.5,
            "machine_busy_cores": 1.9, "first_failure": None, "flags": []}


def _workload(kind: str) -> dict:
    limit = {"items_per_s": 100.0, "best_batch_size": 8, "best_threads": 2, "decode_items_per_s": 300.0,
             "forward_items_per_s_at_best_batch": 200.0,
             "by_threads": [{"threads": 2, "best_batch_size": 8, "items_per_s": 100.0,
                             "sweep": [{"batch_size": 1, "items_per_s": 50.0, "rounds": 3},
                                       {"batch_size": 8, "items_per_s": 100.0, "rounds": 3}]}]}
    served = [_step(4, 60, 60, 90), _step(8, 90, 80, 120), _step(16, 88, 170, 260)]
    peer = [_step(4, 50, 70, 110), _step(8, 52, 140, 200)]
    batching = [_step(4, 70, 50, 80), _step(8, 95, 90, 130)]
    r = {"kind": kind, "note": "n", "spec": "s.yaml", "serving": {"batchSize": 8, "maxBatchDelay": 10},
         "torch_threads_per_worker": 2, "payloads": {"count": 3, "digest": "x"}, "limit": limit,
         "served": {"sweep": served, "saturation": served[1]}, "batch1": _step(8, 45, 150, 200),
         "half_load": _step(10, 45, 20, 70, mode="open"),
         "peers": {"fastapi": {"label": "FastAPI peer", "processes": 2, "batching": None, "sweep": peer,
                               "saturation": peer[1]},
                   "litserve": {"label": "LitServe peer", "processes": 2, "sweep": batching, "saturation": batching[1],
                                "batching": {"max_batch_size": 8, "batch_timeout_ms": 10.0}},
                   "bentoml": {"label": "BentoML peer", "processes": 2, "not_run": "bentoml is not installed",
                               "batching": {"max_batch_size": 8, "batch_timeout_ms": 10.0}}}}
    r["ratios"] = ratios(r, cores=2)
    return r


def _results(rounds: int = 1) -> dict:
    one_round = {"workloads": {"mobilenet": _workload("compute"), "digits": _workload("overhead")},
                 "cold_start": {"seconds": 25.0, "models": ["digits", "mobilenet"], "workers": 2}}
    results = {"schema": 2, "started": "now", "duration_s": 10.0, "machine": {
        "cpu_model": "cpu", "cores_usable": 2, "device": "cpu", "torch": "2", "torchvision": "0", "torchserve": "0",
        "locust": "2", "fastapi": "0", "uvicorn": "0"}, "settings": {"budget_s": 1, "quick": True,
        "runtime_env": {}, "load_generator": "locust"}, "load_average_before": [], "load_average_after": [],
        "rounds": [copy.deepcopy(one_round) for _ in range(rounds)]}
    return summarize(results)


def test_ratios() -> None:
    q = _workload("compute")["ratios"]
    assert q["served_over_limit"] == 0.9
    assert q["batching_gain"] == 2.0
    assert q["inprocess_batching_gain"] == 2.0
    assert q["served_over_fastapi"] == round(90 / 52, 3)
    assert q["half_load_p99_over_p50"] == 3.5
    # TorchServe's best step with p99 <= FastAPI's 200 ms is 90 req/s at 8 users
    assert q["served_over_fastapi_within_p99"] == round(90 / 52, 3)
    # ... and within LitServe's 130 ms also 90 req/s, against LitServe's 95
    assert q["served_over_batching_peer_within_p99"] == round(90 / 95, 3)
    assert q["served_over_bentoml"] is None   # not run


def test_targets_say_why_they_were_missed() -> None:
    results = _results()
    assert results["targets"] == [{**t, "values": [t["value"]], "rounds": 1, "rounds_met": int(bool(t["met"])),
                                   "why_round": None if t["met"] else 1} for t in targets(results["rounds"][0], 2)]
    by_name = {(t["target"], t["workload"]): t for t in results["targets"]}
    assert by_name[("served / true limit", "mobilenet")]["met"] is True
    assert by_name[("served / true limit", "digits")]["met"] is True     # every workload now
    assert by_name[("throughput at p99 <= FastAPI's, same processes", "digits")]["met"] is True
    vs_batching = by_name[("throughput at p99 <= best batching peer's", "digits")]
    assert vs_batching["met"] is False and "LitServe peer (2 processes, batch 8 / 10 ms)" in vs_batching["why"]
    half = by_name[("p99 <= 2.5 x p50 at half saturation", "digits")]
    assert half["met"] is False and "p50 20" in half["why"]
    cold = by_name[("cold start to every model ready", None)]
    assert cold["met"] is False and "2 workers" in cold["why"]


def test_served_above_the_limit_is_a_measurement_error_not_a_pass() -> None:
    results = _results()
    results["rounds"][0]["workloads"]["digits"]["limit"]["items_per_s"] = 60.0
    summarize(results)
    t = next(t for t in results["targets"] if t["target"] == "served / true limit" and t["workload"] == "digits")
    assert t["value"] == 1.5 and t["met"] is False and t["why"].startswith("MEASUREMENT ERROR")


def test_a_step_with_failures_cannot_meet_its_target() -> None:
    results = _results(rounds=3)
    # mobilenet's batching gain is 2.0 (met) in every round; in round 2 the batchSize=1 step got 5xx
    stalled = results["rounds"][1]["workloads"]["mobilenet"]["batch1"]
    stalled.update(failures=12, status_5xx=12, first_failure="503 Service Unavailable")
    # digits' half load is made to meet its goal, but one round's open loop had errors
    for one_round in results["rounds"]:
        _set_half_load(one_round["workloads"]["digits"], 50, 100)
    results["rounds"][2]["workloads"]["digits"]["half_load"]["failures"] = 1
    summarize(results)
    by_name = {(t["target"], t["workload"]): t for t in results["targets"]}
    gain = by_name[("dynamic batching gain over batchSize=1", "mobilenet")]
    assert gain["value"] == 2.0 and gain["met"] is False and gain["why_round"] == 2
    assert "FAILED" in gain["why"] and "503" in gain["why"]
    half = by_name[("p99 <= 2.5 x p50 at half saturation", "digits")]
    assert half["value"] == 2.0 and half["met"] is False and half["rounds_met"] == 2
    assert "**no**" in markdown(results)


def test_markdown_and_well_formedness() -> None:
    results = _results()
    assert problems(results) == []
    text = markdown(results)
    assert "| mobilenet | 0.90 |" in text and "randomly initialised weights" in text
    assert "BentoML peer: not run: bentoml is not installed" in text
    assert "Why the misses happen" in text
    del results["cold_start"]
    assert "missing cold_start" in problems(results)
    del results["rounds"][0]["workloads"]["digits"]["limit"]
    assert "round 1 digits: missing limit" in problems(results)


def _set_half_load(r: dict, p50: float, p99: float) -> None:
    r["half_load"] = {**r["half_load"], "p50_ms": p50, "p99_ms": p99}


def test_three_rounds_are_judged_on_their_median() -> None:
    results = _results(rounds=3)
    # digits p99/p50 at half load per round: 2.0, 3.0, 2.4 -> median 2.4 (met, though round 2 missed)
    for one_round, (p50, p99) in zip(results["rounds"], [(50, 100), (50, 150), (50, 120)]):
        _set_half_load(one_round["workloads"]["digits"], p50, p99)
    results["rounds"][1]["cold_start"]["seconds"] = 12.0
    summarize(results)
    by_name = {(t["target"], t["workload"]): t for t in results["targets"]}
    half = by_name[("p99 <= 2.5 x p50 at half saturation", "digits")]
    assert half["values"] == [2.0, 3.0, 2.4] and half["value"] == 2.4
    assert half["met"] is True and half["rounds_met"] == 2 and half["why"] == ""
    assert results["workloads"]["digits"]["ratios"]["half_load_p99_over_p50"] == 2.4
    assert results["workloads"]["digits"]["rounds"]["half_load_p99_over_p50"] == [2.0, 3.0, 2.4]
    # cold start 25, 12, 25 s -> median 25: missed, explained by a round that measured 25 s
    cold = by_name[("cold start to every model ready", None)]
    assert cold["value"] == 25.0 and cold["met"] is False and cold["why_round"] == 1 and cold["rounds_met"] == 1
    text = markdown(results)
    assert "| digits |" in text and "2.40 (2.00-3.00)" in text and "2 of 3" in text
    assert "### digits, round 3 of 3" in text and "median over the rounds" in text


def test_a_miss_is_explained_by_the_round_nearest_the_median() -> None:
    results = _results(rounds=3)
    for one_round, (p50, p99) in zip(results["rounds"], [(20, 200), (20, 60), (20, 70)]):
        _set_half_load(one_round["workloads"]["digits"], p50, p99)
    summarize(results)
    half = next(t for t in results["targets"]
                if t["target"] == "p99 <= 2.5 x p50 at half saturation" and t["workload"] == "digits")
    assert half["value"] == 3.5 and half["met"] is False and half["why_round"] == 3 and "p99 70" in half["why"]


def _with_oip(results: dict, items_per_request_s: dict[str, float]) -> dict:
    """Every round's mobilenet (limit 100 items/s) given OIP rows: req/s per instance count."""
    for one_round in results["rounds"]:
        r = one_round["workloads"]["mobilenet"]
        r["oip"] = {n: {"instances": int(n), "sweep": [_step(4, rps, 30, 60)], "saturation": _step(4, rps, 30, 60),
                        "items_per_s": round(rps * int(n), 1),
                        "breakdown": {"requests": 40, "frontend total ms": 30.0, "handler ms": 25.0}}
                    for n, rps in items_per_request_s.items()}
    return summarize(results)


def test_oip_rows_are_items_over_the_limit_and_32_instances_is_judged() -> None:
    results = _with_oip(_results(), {"1": 40.0, "8": 10.0, "32": 2.5})  # 40, 80, 80 items/s of 100
    q = results["workloads"]["mobilenet"]["ratios"]
    assert (q["oip_1_items_over_limit"], q["oip_8_items_over_limit"], q["oip_32_items_over_limit"]) == (0.4, 0.8, 0.8)
    assert "oip_32_items_over_limit" not in results["workloads"]["digits"]["ratios"]  # no OIP rows: no key
    oip = [t for t in results["targets"] if t["target"].startswith("OIP")]
    assert [(t["workload"], t["value"], t["met"]) for t in oip] == [("mobilenet", 0.8, False)]
    assert "80.0 items/s (2.5 req/s at 4 users)" in oip[0]["why"] and ">= 0.85" == oip[0]["goal"]
    text = markdown(results)
    assert "OIP x32 items/s / limit" in text and "TorchServe OIP, 32 instance(s) per request, at saturation" in text
    assert "32 per request 80.0 (0.80)" in text
    assert "OIP x32 at 1 user, where a request's time goes (mean ms over 40 requests): frontend total 30.0" in text
    assert problems(results) == []
    met = _with_oip(_results(), {"32": 2.7})  # 86.4 items/s
    assert next(t for t in met["targets"] if t["target"].startswith("OIP"))["met"] is True


def test_an_oip_row_that_only_failed_fails_its_target() -> None:
    results = _results()
    failing = {**_step(1, 5.0, 3, 4), "failures": 25, "first_failure": "25x HTTP 400 (no OIP handler)"}
    results["rounds"][0]["workloads"]["mobilenet"]["oip"] = {
        "32": {"instances": 32, "sweep": [failing], "saturation": None, "items_per_s": None}}
    summarize(results)
    t = next(t for t in results["targets"] if t["target"].startswith("OIP"))
    assert t["met"] is False and "HTTP 400" in t["why"]
    assert "round 1 mobilenet: no OIP x32 saturation point" in problems(results)
