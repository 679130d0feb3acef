"""A round's targets (issue 7's), met or not, each with the measurement that says why it is missed.

Plain functions over the results dict with its ratios (ratios.py); repeats.py judges the medians.
"""
from __future__ import annotations

from typing import Any

from bench.peer_results import peers_of
from bench.ratios import best_batching_peer, best_within_p99, failed, inprocess_run
from bench.repeats import meets

# The targets of issue 7, as (key, description, threshold).
SERVED_OVER_LIMIT_MIN = 0.85
BATCHING_GAIN_MIN = 2.0
P99_OVER_P50_MAX = 2.5
COLD_START_MAX_S = 20.0
OIP_INSTANCES = "32"          # the OIP row the goal judges (issue 25)
OIP_ITEMS_OVER_LIMIT_MIN = 0.85


def limit_config(limit: dict[str, Any]) -> str:
    return (f"{limit.get('best_processes', 1)} process(es) x {limit['best_threads']} threads, "
            f"batch {limit['best_batch_size']}")


def _target(name: str, workload: str | None, value: float | None, op: str, threshold: Any, why: str = "",
            goal: str | None = None, steps: list[dict[str, Any] | None] | None = None) -> dict[str, Any]:
    failures = "; ".join(f for f in map(failed, steps or []) if f)
    met = False if failures else meets(value, op, threshold)
    if failures:
        why = f"FAILED, a step with errors cannot meet a target: {failures}. {why}"
    return {"target": name, "workload": workload, "value": value, "op": op, "threshold": threshold,
            "goal": goal or f"{op} {threshold:g}", "met": met, "failed": failures, "why": "" if met else why}


def _vs_peer_why(r: dict[str, Any], name: str | None, value: float | None) -> str:
    peer = peers_of(r).get(name or "") or {}
    if not name or "not_run" in peer:
        return f"not run: {peer.get('not_run', 'no batching peer ran')}"
    psat = peer.get("saturation") or {}
    sat = r["served"]["saturation"] or {}
    floor: dict[str, Any] = min((s for s in r["served"]["sweep"] if s["p99_ms"] is not None), key=lambda s: s["p99_ms"], default={})
    within = best_within_p99(r["served"]["sweep"], psat.get("p99_ms"))
    return (f"{peer['label']} ({peer['processes']} processes"
            + (f", batch {peer['batching']['max_batch_size']} / " + (
                f"{peer['batching']['batch_timeout_ms']:g} ms" if peer["batching"]["batch_timeout_ms"] is not None
                else "adaptive window") if peer.get("batching") else "") + f") at saturation: {psat.get('rps')} req/s, p99 "
            f"{psat.get('p99_ms')} ms at {psat.get('users')} users; TorchServe within that p99: "
            + (f"{within['rps']} req/s at {within['users']} users" if within else
               f"none: its lowest p99 was {floor.get('p99_ms')} ms ({floor.get('users')} users, {floor.get('rps')} "
               f"req/s), maxBatchDelay {r['serving'].get('maxBatchDelay')} ms")
            + (f" (the frontend hop alone, a no-op handler at 1 user: p50 {r['floor']['p50_ms']} ms, p99 "
               f"{r['floor']['p99_ms']} ms)" if r.get("floor") else "")
            + (f"; 1 user on the model, mean ms: {breakdown_text(r['breakdown'])}" if r.get("breakdown") else "")
            + f". TorchServe's own saturation: {sat.get('rps')} req/s at p99 {sat.get('p99_ms')} ms.")


def breakdown_text(b: dict[str, Any]) -> str:
    return ", ".join(f"{k.removesuffix(' ms')} {v}" for k, v in b.items() if k != "requests")


def _oip_target(name: str, r: dict[str, Any], cores: int) -> dict[str, Any]:
    """Issue 25's goal: OIP requests of 32 instances reach 0.85 of the true limit in items/s."""
    oip = r["oip"][OIP_INSTANCES]
    sat = oip.get("saturation") or {}
    lim = r["limit"]
    items = oip.get("items_per_s")
    server_ms = _per_item(sat.get("server_cores"), items)
    why = (f"{items} items/s ({sat.get('rps')} req/s at {sat.get('users')} users) against the limit "
           f"{lim['items_per_s']} items/s ({limit_config(lim)}); at that step the load generator used "
           f"{sat.get('client_cores')} cores, TorchServe {sat.get('server_cores')}, the machine "
           f"{sat.get('machine_busy_cores')} of {cores}. Server core-ms per item {server_ms} against "
           f"~{r['ratios']['limit_core_ms_per_item']} in-process." if sat else "no step of its sweep ran without errors.")
    return _target(f"OIP, {OIP_INSTANCES} instances per request: items/s / true limit", name,
                   r["ratios"].get(f"oip_{OIP_INSTANCES}_items_over_limit"), ">=", OIP_ITEMS_OVER_LIMIT_MIN, why,
                   # No saturating step: the sweep's failing step says why (e.g. every request got 400).
                   steps=[oip.get("saturation") or next((s for s in oip["sweep"] if failed(s)), None)])


def _per_item(cores: float | None, items_per_s: float | None) -> float | None:
    return None if cores is None or not items_per_s else round(1000 * cores / items_per_s, 3)


def targets(one_round: dict[str, Any], cores: int) -> list[dict[str, Any]]:
    """The targets as measured in one round ({"workloads": ..., "cold_start": ...})."""
    out = []
    for name, r in one_round["workloads"].items():
        q = r["ratios"]
        sat = r["served"]["saturation"] or {}
        half = r["half_load"] or {}
        lim = r["limit"]
        v = q["served_over_limit"]
        error = (f"MEASUREMENT ERROR: served {sat.get('rps')} req/s is above the in-process limit "
                 f"{lim['items_per_s']} items/s ({limit_config(lim)}); " if v is not None and v > 1.0 else "")
        out.append(_target("served / true limit", name, v, "between", [SERVED_OVER_LIMIT_MIN, 1.0],
                           f"{error}at saturation the load generator used {sat.get('client_cores')} cores, "
                           f"TorchServe {sat.get('server_cores')}, the machine {sat.get('machine_busy_cores')} of "
                           f"{cores}; the limit ({limit_config(lim)}) had every core. Cost per item: in-process "
                           f"~{q['limit_core_ms_per_item']} core-ms, served {q['server_core_ms_per_request']} server "
                           f"core-ms + {q['client_core_ms_per_request']} client core-ms.",
                           goal=f">= {SERVED_OVER_LIMIT_MIN:g} and <= 1.0 (above 1: the limit is wrong)", steps=[sat]))
        if r["kind"] == "compute":
            run = inprocess_run(lim, r.get("torch_threads_per_worker"))
            out.append(_target("dynamic batching gain over batchSize=1", name, q["batching_gain"], ">=",
                               BATCHING_GAIN_MIN,
                               f"in-process, at the {run['threads']} torch thread(s) each served worker runs, the "
                               f"best batch ({run['best_batch_size']}) is only {q['inprocess_batching_gain']}x batch 1"
                               f" (decode alone {lim['decode_items_per_s']} items/s, forward + top-k alone at batch "
                               f"{lim['best_batch_size']} {lim['forward_items_per_s_at_best_batch']} items/s): the "
                               "per-item decode and per-request costs are not batched.", steps=[sat, r["batch1"]]))
        v = q["served_over_fastapi_within_p99"]
        out.append(_target("throughput at p99 <= FastAPI's, same processes", name, v, ">=", 1.0,
                           _vs_peer_why(r, "fastapi", v),
                           goal=">= 1.0 (TorchServe req/s at p99 <= the peer's saturation p99, over the peer's)"))
        v = q["served_over_batching_peer_within_p99"]
        out.append(_target("throughput at p99 <= best batching peer's", name, v, ">=", 1.0,
                           _vs_peer_why(r, best_batching_peer(r), v),
                           goal=">= 1.0 (LitServe / BentoML, whichever saturates higher)"))
        out.append(_target("p99 <= 2.5 x p50 at half saturation", name, q["half_load_p99_over_p50"], "<=",
                           P99_OVER_P50_MAX,
                           f"open loop at {half.get('offered_rps')} req/s: p50 {half.get('p50_ms')} ms, p99 "
                           f"{half.get('p99_ms')} ms with maxBatchDelay {r['serving'].get('maxBatchDelay')} ms; "
                           f"machine {half.get('machine_busy_cores')} of {cores} cores busy, of which client "
                           f"{half.get('client_cores')}, TorchServe {half.get('server_cores')}, stolen by the "
                           f"hypervisor {half.get('steal_cores', 0.0)}. The tail is "
                           "requests whose batch waited behind another batch or whose worker lost its core.",
                           steps=[r["half_load"]]))
        if OIP_INSTANCES in (r.get("oip") or {}):
            out.append(_oip_target(name, r, cores))
    cold = one_round.get("cold_start")
    if cold:
        v = cold["seconds"]
        starts = {n: r.get("server_start_s") for n, r in one_round["workloads"].items()}
        out.append(_target("cold start to every model ready", None, v, "<=", COLD_START_MAX_S,
                           f"{cold['workers']} workers on {cores} cores, each importing torch and loading its "
                           f"model in parallel; per-workload servers (2 archives each) took {starts} s.",
                           goal=f"<= {COLD_START_MAX_S:g} s"))
    return out
