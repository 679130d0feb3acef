"""A round's ratios per workload: served against the in-process limit, the peers and batchSize=1,
the tail at half load, the cost per request (report.py's first step; targets.py judges them).

Plain functions over the results dict (no Locust, no torch) so unit tests can check them.
"""
from __future__ import annotations

from typing import Any

from bench.peer_results import peers_of


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def step_at(steps: list[dict[str, Any]], users: int) -> dict[str, Any] | None:
    return next((s for s in steps if s["users"] == users and s["mode"] == "closed"), None)


def best_within_p99(steps: list[dict[str, Any]], p99_ms: float | None) -> dict[str, Any] | None:
    """The closed-loop step with the most req/s, no failures and a p99 no worse than `p99_ms`."""
    ok = [s for s in steps if s["mode"] == "closed" and not s["failures"] and s["requests"]
          and p99_ms is not None and s["p99_ms"] is not None and s["p99_ms"] <= p99_ms]
    return max(ok, key=lambda s: s["rps"]) if ok else None


def failed(step: dict[str, Any] | None) -> str:
    """What went wrong in a step ('' when nothing): errors or 5xx answers mean it cannot meet a target."""
    if not step or not (step.get("failures") or step.get("status_5xx")):
        return ""
    return (f"{step['target']} ({step['users']} users) had {step['failures']} failures, {step.get('status_5xx', 0)} "
            f"5xx (first: {step.get('first_failure')})")


def inprocess_run(limit: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    """The limit's sweep at `threads` torch threads per process (what each served worker runs; with the
    most processes, i.e. TorchServe's own split), else its best configuration."""
    runs = limit.get("by_config") or limit["by_threads"]  # by_threads: one process, before the true limit
    same = [t for t in runs if t["threads"] == threads]
    return (max(same, key=lambda t: t.get("processes", 1)) if same
            else max(runs, key=lambda t: t["items_per_s"]))


def inprocess_batching_gain(limit: dict[str, Any], threads: int | None = None) -> float | None:
    """Best batch vs batch 1 in-process at the workers' thread count: what batching can give at most."""
    run = inprocess_run(limit, threads)
    one = next((s for s in run["sweep"] if s["batch_size"] == 1), None)
    return _div(run["items_per_s"], one and one["items_per_s"])


def _over_peer_within_p99(r: dict[str, Any], peer: dict[str, Any]) -> float | None:
    """TorchServe's most req/s at a p99 no worse than the peer's saturation p99, over the peer's req/s."""
    sat = peer.get("saturation")
    if not sat:
        return None
    within = best_within_p99(r["served"]["sweep"], sat.get("p99_ms"))
    return _div(within["rps"] if within else 0.0, sat.get("rps"))


def best_batching_peer(r: dict[str, Any]) -> str | None:
    """The batching peer with the most req/s at saturation, among those that ran."""
    ran = {n: p for n, p in peers_of(r).items() if p.get("batching") and p.get("saturation")}
    return max(ran, key=lambda n: ran[n]["saturation"]["rps"]) if ran else None


def ratios(r: dict[str, Any], cores: int) -> dict[str, Any]:
    limit = r["limit"]["items_per_s"]
    sat = r["served"]["saturation"] or {}
    b1 = r["batch1"] or {}
    half = r["half_load"] or {}
    client = sat.get("client_cores")
    peers = peers_of(r)
    fastapi = peers.get("fastapi") or {}
    best_batching = best_batching_peer(r)
    out = {
        "served_over_limit": _div(sat.get("rps"), limit),
        "batching_gain": _div(sat.get("rps"), b1.get("rps")),
        "inprocess_batching_gain": inprocess_batching_gain(r["limit"], r.get("torch_threads_per_worker")),
        # The comparisons: TorchServe's best throughput at a p99 no worse than the peer's.
        "served_over_fastapi_within_p99": _over_peer_within_p99(r, fastapi),
        "served_over_batching_peer_within_p99": _over_peer_within_p99(r, peers[best_batching]) if best_batching
        else None,
        "half_load_p99_over_p50": _div(half.get("p99_ms"), half.get("p50_ms")),
        "client_cores_at_saturation": client,
        "server_core_ms_per_request": _div(1000 * (sat.get("server_cores") or 0), sat.get("rps")),
        "client_core_ms_per_request": _div(1000 * (client or 0), sat.get("rps")),
        "limit_core_ms_per_item": _div(1000 * r["limit"]["best_threads"] * r["limit"].get("best_processes", 1),
                                       limit),
        "client_bound": any(f.startswith("client-bound") for f in sat.get("flags", [])),
    }
    for name, peer in peers.items():
        out[f"served_over_{name}"] = _div(sat.get("rps"), (peer.get("saturation") or {}).get("rps"))
    # Open Inference Protocol rows (issue 25; absent from older results, which keep their keys).
    for n, oip in (r.get("oip") or {}).items():
        out[f"oip_{n}_items_over_limit"] = _div(oip.get("items_per_s"), limit)
    return out
