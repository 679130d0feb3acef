"""Results -> ratios, the issue's targets (met or not, and the measurement that says why), Markdown.

Plain functions over the results dict (no Locust, no torch) so unit tests can check them.
"""
from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1
# The targets of issue 7, as (key, description, threshold).
SERVED_OVER_LIMIT_MIN = 0.85
BATCHING_GAIN_MIN = 2.0
P99_OVER_P50_MAX = 2.5
COLD_START_MAX_S = 20.0


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def step_at(steps: list[dict[str, Any]], users: int) -> dict[str, Any] | None:
    return next((s for s in steps if s["users"] == users and s["mode"] == "closed"), None)


def best_within_p99(steps: list[dict[str, Any]], p99_ms: float | None) -> dict[str, Any] | None:
    """The closed-loop step with the most req/s, no failures and a p99 no worse than `p99_ms`."""
    ok = [s for s in steps if s["mode"] == "closed" and not s["failures"] and s["requests"]
          and p99_ms is not None and s["p99_ms"] is not None and s["p99_ms"] <= p99_ms]
    return max(ok, key=lambda s: s["rps"]) if ok else None


def inprocess_run(limit: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    """The limit's sweep at `threads` torch threads (what each served worker runs), else at its best."""
    runs = limit["by_threads"]
    return next((t for t in runs if t["threads"] == threads), None) or next(
        t for t in runs if t["threads"] == limit["best_threads"])


def inprocess_batching_gain(limit: dict[str, Any], threads: int | None = None) -> float | None:
    """Best batch vs batch 1 in-process at the workers' thread count: what batching can give at most."""
    run = inprocess_run(limit, threads)
    one = next((s for s in run["sweep"] if s["batch_size"] == 1), None)
    return _div(run["items_per_s"], one and one["items_per_s"])


def ratios(r: dict[str, Any], cores: int) -> dict[str, Any]:
    limit = r["limit"]["items_per_s"]
    sat = r["served"]["saturation"] or {}
    peer = r["peer"]["saturation"] or {}
    b1 = r["batch1"] or {}
    half = r["half_load"] or {}
    at_peer = step_at(r["served"]["sweep"], peer["users"]) if peer else None
    within = best_within_p99(r["served"]["sweep"], peer.get("p99_ms"))
    client = sat.get("client_cores")
    # The limit had every core; served, the load generator took `client` of them on this host.
    limit_left = limit * max(0.05, cores - client) / cores if client is not None else None
    return {
        "served_over_limit": _div(sat.get("rps"), limit),
        "served_over_limit_without_client_cpu": _div(sat.get("rps"), limit_left),
        "batching_gain": _div(sat.get("rps"), b1.get("rps")),
        "inprocess_batching_gain": inprocess_batching_gain(r["limit"], r.get("torch_threads_per_worker")),
        "served_over_peer": _div(sat.get("rps"), peer.get("rps")),
        # The comparison: TorchServe's best throughput at a p99 no worse than the peer's.
        "served_over_peer_within_peer_p99": _div(within["rps"] if within else 0.0, peer.get("rps")),
        "served_users_within_peer_p99": within and within["users"],
        "peer_concurrency": peer.get("users"),
        "served_over_peer_at_peer_concurrency": _div(at_peer and at_peer["rps"], peer.get("rps")),
        "p99_over_peer_p99_at_peer_concurrency": _div(at_peer and at_peer["p99_ms"], peer.get("p99_ms")),
        "half_load_p99_over_p50": _div(half.get("p99_ms"), half.get("p50_ms")),
        "client_cores_at_saturation": client,
        "server_core_ms_per_request": _div(1000 * (sat.get("server_cores") or 0), sat.get("rps")),
        "peer_core_ms_per_request": _div(1000 * (peer.get("server_cores") or 0), peer.get("rps")),
        "client_core_ms_per_request": _div(1000 * (client or 0), sat.get("rps")),
        "limit_core_ms_per_item": _div(1000 * r["limit"]["best_threads"], limit),
        "client_bound": any(f.startswith("client-bound") for f in sat.get("flags", [])),
    }


def _limit_at_worker_settings(r: dict[str, Any]) -> str:
    """The in-process rate at the served worker's own thread count and batch size, when measured."""
    threads, batch = r["torch_threads_per_worker"], r["serving"].get("batchSize")
    run = next((t for t in r["limit"]["by_threads"] if t["threads"] == threads), None)
    point = run and next((s for s in run["sweep"] if s["batch_size"] == batch), None)
    if not point:
        return ""
    return (f"In-process at the worker's own settings ({threads} threads, batch {batch}): "
            f"{point['items_per_s']} items/s; the limit's best used {r['limit']['best_threads']} threads.")


def _target(name: str, workload: str | None, value: float | None, goal: str, met: bool | None,
            why: str = "") -> dict[str, Any]:
    return {"target": name, "workload": workload, "value": value, "goal": goal, "met": met,
            "why": "" if met else why}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    cores = results["machine"]["cores_usable"]
    out = []
    for name, r in results["workloads"].items():
        q = r["ratios"]
        sat = r["served"]["saturation"] or {}
        peer = r["peer"]["saturation"] or {}
        half = r["half_load"] or {}
        cpu = (f"at saturation the load generator used {sat.get('client_cores')} cores, TorchServe "
               f"{sat.get('server_cores')}, the machine {sat.get('machine_busy_cores')} of {cores}")
        if r["kind"] == "compute":
            v = q["served_over_limit"]
            out.append(_target("served / in-process limit", name, v, f">= {SERVED_OVER_LIMIT_MIN}",
                               None if v is None else v >= SERVED_OVER_LIMIT_MIN,
                               f"{cpu}; the limit ran alone with every core. With the client's share removed the "
                               f"ratio is {q['served_over_limit_without_client_cpu']}. Cost per item: in-process "
                               f"~{q['limit_core_ms_per_item']} core-ms, served {q['server_core_ms_per_request']} "
                               f"server core-ms + {q['client_core_ms_per_request']} client core-ms. "
                               + _limit_at_worker_settings(r)))
            v = q["batching_gain"]
            lim = r["limit"]
            run = inprocess_run(lim, r.get("torch_threads_per_worker"))
            out.append(_target("dynamic batching gain over batchSize=1", name, v, f">= {BATCHING_GAIN_MIN}",
                               None if v is None else v >= BATCHING_GAIN_MIN,
                               f"in-process, at the {run['threads']} torch thread(s) each served worker runs, the "
                               f"best batch ({run['best_batch_size']}) is only {q['inprocess_batching_gain']}x batch 1"
                               f" (decode alone {lim['decode_items_per_s']} items/s, forward + top-k alone at batch "
                               f"{lim['best_batch_size']} {lim['forward_items_per_s_at_best_batch']} items/s): the "
                               "per-item decode and per-request costs are not batched, so batching cannot give "
                               "more than that bound."))
        v = q["served_over_peer_within_peer_p99"]
        at = step_at(r["served"]["sweep"], peer.get("users", -1)) or {}
        floor = min((s for s in r["served"]["sweep"] if s["p99_ms"] is not None), key=lambda s: s["p99_ms"], default={})
        within = (f"{round(v * peer['rps'], 1)} req/s at {q['served_users_within_peer_p99']} users" if v
                  else f"none: its lowest p99 was {floor.get('p99_ms')} ms ({floor.get('users')} users, "
                       f"{floor.get('rps')} req/s), a floor set by maxBatchDelay "
                       f"{r['serving'].get('maxBatchDelay')} ms plus the frontend hop")
        out.append(_target("throughput >= FastAPI peer at p99 <= peer's", name, v,
                           ">= 1.0 (TorchServe req/s at p99 <= the peer's saturation p99)",
                           None if v is None else v >= 1.0,
                           f"peer at saturation: {peer.get('rps')} req/s, p99 {peer.get('p99_ms')} ms at "
                           f"{peer.get('users')} users ({q['peer_core_ms_per_request']} server core-ms/request); "
                           f"TorchServe within that p99: {within}. TorchServe's own saturation: "
                           f"{sat.get('rps')} req/s ({q['served_over_peer']}x the peer) at p99 {sat.get('p99_ms')} ms, "
                           f"{q['server_core_ms_per_request']} server core-ms/request; at the peer's "
                           f"{peer.get('users')} users {at.get('rps')} req/s, p99 {at.get('p99_ms')} ms."))
        v = q["half_load_p99_over_p50"]
        out.append(_target("p99 <= 2.5 x p50 at half saturation", name, v, f"<= {P99_OVER_P50_MAX}",
                           None if v is None else v <= P99_OVER_P50_MAX,
                           f"open loop at {half.get('offered_rps')} req/s: p50 {half.get('p50_ms')} ms, p99 "
                           f"{half.get('p99_ms')} ms with maxBatchDelay {r['serving'].get('maxBatchDelay')} ms; "
                           f"machine {half.get('machine_busy_cores')} of {cores} cores busy, of which client "
                           f"{half.get('client_cores')}, TorchServe {half.get('server_cores')}, stolen by the "
                           f"hypervisor {half.get('steal_cores', 0.0)}. The tail is "
                           "requests whose batch waited behind another batch or whose worker lost its core."))
    cold = results.get("cold_start")
    if cold:
        v = cold["seconds"]
        starts = {n: r.get("server_start_s") for n, r in results["workloads"].items()}
        out.append(_target("cold start to every model ready", None, v, f"<= {COLD_START_MAX_S:g} s",
                           v <= COLD_START_MAX_S,
                           f"{cold['workers']} workers on {cores} cores, each importing torch and loading its "
                           f"model in parallel; per-workload servers (2 archives each) took {starts} s."))
    return out


# --- Markdown ------------------------------------------------------------------------------------

def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return str(value)


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *[_row(r) for r in rows]]


def _step_row(label: str, s: dict[str, Any] | None) -> list[Any]:
    if not s:
        return [label, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"]
    users = f"{s['users']}" + (f" (open, {s['offered_rps']} req/s offered)" if s["mode"] == "open" else "")
    return [label, _f(s["rps"]), _f(s["p50_ms"], 0), _f(s["p95_ms"], 0), _f(s["p99_ms"], 0), users,
            s["failures"], _f(s["client_cores"], 2), _f(s["server_cores"], 2), _f(s["machine_busy_cores"], 2),
            _f(s.get("steal_cores"), 2)]


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = ["# Benchmark results (`make bench`)", "",
             f"Run {results['started']}, {results['duration_s']:.0f} s, budget {results['settings']['budget_s']:g} s"
             f"{' (quick)' if results['settings']['quick'] else ''}. Ratios are the headline; absolute numbers "
             "are for this machine only. `mobilenet` is torchvision mobilenet_v3_small with **randomly "
             "initialised weights** (timing only).", "",
             *_table(["machine", ""], [
                 ["CPU", m["cpu_model"]], ["cores (usable)", m["cores_usable"]], ["device", m["device"]],
                 ["torch / torchvision", f"{m['torch']} / {m['torchvision']}"], ["torchserve", m["torchserve"]],
                 ["load generator", f"{results['settings']['load_generator']}, locust {m['locust']}"],
                 ["peer", f"fastapi {m['fastapi']} + uvicorn {m['uvicorn']}, 1 process"],
                 ["runtime env (every measured process)", results["settings"]["runtime_env"]],
                 ["load average before / after", f"{results['load_average_before']} / {results['load_average_after']}"],
             ]), "", "## Headline ratios", ""]
    rows = []
    for name, r in results["workloads"].items():
        q = r["ratios"]
        rows.append([name, _f(q["served_over_limit"], 2), _f(q["served_over_limit_without_client_cpu"], 2),
                     _f(q["batching_gain"], 2), _f(q["inprocess_batching_gain"], 2), _f(q["served_over_peer"], 2),
                     _f(q["served_over_peer_within_peer_p99"], 2), _f(q["p99_over_peer_p99_at_peer_concurrency"], 2),
                     _f(q["half_load_p99_over_p50"], 2),
                     _f(q["client_cores_at_saturation"], 2), _f(q["client_bound"])])
    lines += _table(["workload", "served / limit", "served / limit (client CPU removed)", "batching gain",
                     "in-process batching gain", "served / peer (max req/s)", "served / peer at p99 <= peer's",
                     "p99 / peer p99 (same users)",
                     "p99 / p50 at half load", "client cores at saturation", "client-bound"], rows)
    cold = results.get("cold_start") or {}
    lines += ["", f"Cold start ({', '.join(cold.get('models', []))}, {cold.get('workers')} workers): "
                  f"**{_f(cold.get('seconds'))} s** to every model READY.", "", "## Targets (issue 7)", ""]
    lines += _table(["target", "workload", "value", "goal", "met"],
                    [[t["target"], t["workload"] or "all", _f(t["value"], 2), t["goal"],
                      {True: "yes", False: "**no**", None: "-"}[t["met"]]] for t in results["targets"]])
    misses = [t for t in results["targets"] if t["met"] is False]
    if misses:
        lines += ["", "Why the misses happen (measured in this run):", ""]
        lines += [f"- {t['target']} ({t['workload'] or 'all'}): {t['why']}" for t in misses]
    for name, r in results["workloads"].items():
        lim = r["limit"]
        lines += ["", f"## {name}", "", f"{r['note']}. Spec `{r['spec']}`; served with "
                  f"{', '.join(f'{k}={v}' for k, v in r['serving'].items())}, torch_threads="
                  f"{r['torch_threads_per_worker']} per worker; {r['payloads']['count']} distinct request bodies "
                  f"(digest {r['payloads']['digest']}), the same for every measurement.", ""]
        sat = r["served"]["saturation"]
        peer = r["peer"]["saturation"]
        lines += _table(["measurement", "req/s", "p50 ms", "p95 ms", "p99 ms", "users", "failures",
                         "client cores", "server cores", "machine busy cores", "of which stolen"], [
            [f"in-process limit (batch {lim['best_batch_size']}, {lim['best_threads']} threads)",
             _f(lim["items_per_s"]), "-", "-", "-", "-", 0, "-", "-", "-"],
            _step_row("TorchServe at saturation", sat),
            _step_row("TorchServe batchSize=1, same users", r["batch1"]),
            _step_row("TorchServe at half saturation (open loop)", r["half_load"]),
            _step_row("FastAPI peer at saturation", peer),
            _step_row("TorchServe at the peer's users", step_at(r["served"]["sweep"], peer["users"]) if peer else None),
        ])
        lines += ["", f"In-process: decode alone {lim['decode_items_per_s']} items/s; forward + top-k alone at "
                      f"batch {lim['best_batch_size']}: {lim['forward_items_per_s_at_best_batch']} items/s. "
                      "Limit by threads: " + "; ".join(
                          f"{t['threads']} threads: " + ", ".join(f"b{s['batch_size']} {s['items_per_s']:g}"
                                                                 for s in t["sweep"]) for t in lim["by_threads"]),
                  "", "Sweeps (users: req/s, p99 ms): TorchServe " + ", ".join(
                      f"{s['users']}: {_f(s['rps'], 0)}, {_f(s['p99_ms'], 0)}" for s in r["served"]["sweep"])
                  + "; peer " + ", ".join(f"{s['users']}: {_f(s['rps'], 0)}, {_f(s['p99_ms'], 0)}"
                                          for s in r["peer"]["sweep"]) + "."]
        flags = sorted({f for s in [sat, peer, r["batch1"], r["half_load"]] if s for f in s["flags"]})
        if flags:
            lines += ["", "Flags:", "", *[f"- {f}" for f in flags]]
    return "\n".join(lines) + "\n"


# --- well-formedness (the smoke test) -------------------------------------------------------------

REQUIRED_WORKLOAD_KEYS = ("kind", "serving", "limit", "served", "batch1", "half_load", "peer", "ratios")


def problems(results: dict[str, Any]) -> list[str]:
    """What is missing or malformed in a results dict (empty when well-formed)."""
    found = []
    for key in ("schema", "machine", "settings", "workloads", "cold_start", "targets", "duration_s"):
        if key not in results:
            found.append(f"missing {key}")
    for name, r in results.get("workloads", {}).items():
        found += [f"{name}: missing {k}" for k in REQUIRED_WORKLOAD_KEYS if k not in r]
        if not (r.get("limit") or {}).get("items_per_s", 0) > 0:
            found.append(f"{name}: no in-process limit")
        for part in ("served", "peer"):
            if not (r.get(part) or {}).get("saturation"):
                found.append(f"{name}: no {part} saturation point")
    if not (results.get("cold_start") or {}).get("seconds", 0) > 0:
        found.append("no cold start time")
    return found


def main(argv: list[str] | None = None) -> int:
    """Re-render latest.md (ratios and targets recomputed) from a latest.json."""
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", type=Path, nargs="?", default=Path(__file__).parent / "results" / "latest.json")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    for r in results["workloads"].values():
        r["ratios"] = ratios(r, results["machine"]["cores_usable"])
    results["targets"] = targets(results)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    args.results.with_suffix(".md").write_text(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
