"""Results -> ratios, the issue's targets (met or not, and the measurement that says why), Markdown.

Plain functions over the results dict (no Locust, no torch) so unit tests can check them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2  # 2: results["rounds"] holds each round; workloads, targets, cold_start their medians
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


def _target(name: str, workload: str | None, value: float | None, op: str, threshold: float, why: str = "",
            goal: str | None = None) -> dict[str, Any]:
    met = None if value is None else (value >= threshold if op == ">=" else value <= threshold)
    return {"target": name, "workload": workload, "value": value, "op": op, "threshold": threshold,
            "goal": goal or f"{op} {threshold:g}", "met": met, "why": "" if met else why}


def targets(one_round: dict[str, Any], cores: int) -> list[dict[str, Any]]:
    """The targets as measured in one round ({"workloads": ..., "cold_start": ...})."""
    out = []
    for name, r in one_round["workloads"].items():
        q = r["ratios"]
        sat = r["served"]["saturation"] or {}
        peer = r["peer"]["saturation"] or {}
        half = r["half_load"] or {}
        cpu = (f"at saturation the load generator used {sat.get('client_cores')} cores, TorchServe "
               f"{sat.get('server_cores')}, the machine {sat.get('machine_busy_cores')} of {cores}")
        if r["kind"] == "compute":
            v = q["served_over_limit"]
            out.append(_target("served / in-process limit", name, v, ">=", SERVED_OVER_LIMIT_MIN,
                               f"{cpu}; the limit ran alone with every core. With the client's share removed the "
                               f"ratio is {q['served_over_limit_without_client_cpu']}. Cost per item: in-process "
                               f"~{q['limit_core_ms_per_item']} core-ms, served {q['server_core_ms_per_request']} "
                               f"server core-ms + {q['client_core_ms_per_request']} client core-ms. "
                               + _limit_at_worker_settings(r)))
            v = q["batching_gain"]
            lim = r["limit"]
            run = inprocess_run(lim, r.get("torch_threads_per_worker"))
            out.append(_target("dynamic batching gain over batchSize=1", name, v, ">=", BATCHING_GAIN_MIN,
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
        out.append(_target("throughput >= FastAPI peer at p99 <= peer's", name, v, ">=", 1.0,
                           f"peer at saturation: {peer.get('rps')} req/s, p99 {peer.get('p99_ms')} ms at "
                           f"{peer.get('users')} users ({q['peer_core_ms_per_request']} server core-ms/request); "
                           f"TorchServe within that p99: {within}. TorchServe's own saturation: "
                           f"{sat.get('rps')} req/s ({q['served_over_peer']}x the peer) at p99 {sat.get('p99_ms')} ms, "
                           f"{q['server_core_ms_per_request']} server core-ms/request; at the peer's "
                           f"{peer.get('users')} users {at.get('rps')} req/s, p99 {at.get('p99_ms')} ms.",
                           goal=">= 1.0 (TorchServe req/s at p99 <= the peer's saturation p99)"))
        v = q["half_load_p99_over_p50"]
        out.append(_target("p99 <= 2.5 x p50 at half saturation", name, v, "<=", P99_OVER_P50_MAX,
                           f"open loop at {half.get('offered_rps')} req/s: p50 {half.get('p50_ms')} ms, p99 "
                           f"{half.get('p99_ms')} ms with maxBatchDelay {r['serving'].get('maxBatchDelay')} ms; "
                           f"machine {half.get('machine_busy_cores')} of {cores} cores busy, of which client "
                           f"{half.get('client_cores')}, TorchServe {half.get('server_cores')}, stolen by the "
                           f"hypervisor {half.get('steal_cores', 0.0)}. The tail is "
                           "requests whose batch waited behind another batch or whose worker lost its core."))
    cold = one_round.get("cold_start")
    if cold:
        v = cold["seconds"]
        starts = {n: r.get("server_start_s") for n, r in one_round["workloads"].items()}
        out.append(_target("cold start to every model ready", None, v, "<=", COLD_START_MAX_S,
                           f"{cold['workers']} workers on {cores} cores, each importing torch and loading its "
                           f"model in parallel; per-workload servers (2 archives each) took {starts} s.",
                           goal=f"<= {COLD_START_MAX_S:g} s"))
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


def _spread(median: Any, values: list[Any] | None, digits: int = 2) -> str:
    """'2.06 (1.95-2.10)': the median and the range over the rounds (just the value for one round)."""
    numbers = [v for v in values or [] if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) < 2 or isinstance(median, bool):
        return _f(median, digits)
    return f"{_f(median, digits)} ({min(numbers):.{digits}f}-{max(numbers):.{digits}f})"


HEADLINE = [("served / limit", "served_over_limit"),
            ("served / limit (client CPU removed)", "served_over_limit_without_client_cpu"),
            ("batching gain", "batching_gain"), ("in-process batching gain", "inprocess_batching_gain"),
            ("served / peer (max req/s)", "served_over_peer"),
            ("served / peer at p99 <= peer's", "served_over_peer_within_peer_p99"),
            ("p99 / peer p99 (same users)", "p99_over_peer_p99_at_peer_concurrency"),
            ("p99 / p50 at half load", "half_load_p99_over_p50"),
            ("client cores at saturation", "client_cores_at_saturation"), ("client-bound", "client_bound")]


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    rounds = results["rounds"]
    many = len(rounds) > 1
    lines = ["# Benchmark results (`make bench`)", "",
             f"Run {results['started']}, {results['duration_s']:.0f} s, {len(rounds)} round(s) of budget "
             f"{results['settings']['budget_s']:g} s{' (quick)' if results['settings']['quick'] else ''}. "
             + ("Every workload and the cold start were measured once per round, rounds one after another; each "
                "figure below is the **median over the rounds** (min-max in parentheses) and each target is judged "
                "on its median. " if many else "")
             + "Ratios are the headline; absolute numbers are for this machine only. `mobilenet` is torchvision "
             "mobilenet_v3_small with **randomly initialised weights** (timing only).", "",
             *_table(["machine", ""], [
                 ["CPU", m["cpu_model"]], ["cores (usable)", m["cores_usable"]], ["device", m["device"]],
                 ["torch / torchvision", f"{m['torch']} / {m['torchvision']}"], ["torchserve", m["torchserve"]],
                 ["load generator", f"{results['settings']['load_generator']}, locust {m['locust']}"],
                 ["peer", f"fastapi {m['fastapi']} + uvicorn {m['uvicorn']}, 1 process"],
                 ["runtime env (every measured process)", results["settings"]["runtime_env"]],
                 ["load average before / after", f"{results['load_average_before']} / {results['load_average_after']}"],
             ]), "", "## Headline ratios", ""]
    rows = [[name, *[_spread(w["ratios"][key], w.get("rounds", {}).get(key)) for _, key in HEADLINE]]
            for name, w in results["workloads"].items()]
    lines += _table(["workload", *[label for label, _ in HEADLINE]], rows)
    cold = results.get("cold_start") or {}
    lines += ["", f"Cold start ({', '.join(cold.get('models', []))}, {cold.get('workers')} workers): "
                  f"**{_spread(cold.get('seconds'), cold.get('values'), 1)} s** to every model READY.", "",
              "## Targets (issue 7)", ""]
    lines += _table(["target", "workload", "value" + (" (median)" if many else ""), "goal", "met",
                     *(["each round", "rounds met"] if many else [])],
                    [[t["target"], t["workload"] or "all", _f(t["value"], 2), t["goal"],
                      {True: "yes", False: "**no**", None: "-"}[t["met"]],
                      *([", ".join(_f(v, 2) for v in t["values"]), f"{t['rounds_met']} of {t['rounds']}"]
                        if many else [])] for t in results["targets"]])
    misses = [t for t in results["targets"] if t["met"] is False]
    if misses:
        lines += ["", "Why the misses happen (measured in the round nearest the median):" if many
                  else "Why the misses happen (measured in this run):", ""]
        lines += [f"- {t['target']} ({t['workload'] or 'all'}"
                  + (f", round {t['why_round']}" if many and t.get("why_round") else "") + f"): {t['why']}"
                  for t in misses]
    for name, w in results["workloads"].items():
        lines += ["", f"## {name}", "", f"{w['note']}. Spec `{w['spec']}`; served with "
                  f"{', '.join(f'{k}={v}' for k, v in w['serving'].items())}, torch_threads="
                  f"{w['torch_threads_per_worker']} per worker; {w['payloads']['count']} distinct request bodies "
                  f"(digest {w['payloads']['digest']}), the same for every measurement."]
        for number, one_round in enumerate(rounds, 1):
            r = one_round["workloads"].get(name)
            if r:
                if many:
                    lines += ["", f"### {name}, round {number} of {len(rounds)}"]
                lines += ["", *_workload_details(r)]
    return "\n".join(lines) + "\n"


def _workload_details(r: dict[str, Any]) -> list[str]:
    """One round of one workload: its steps, the in-process split, the sweeps and the flags."""
    lim = r["limit"]
    sat = r["served"]["saturation"]
    peer = r["peer"]["saturation"]
    lines = _table(["measurement", "req/s", "p50 ms", "p95 ms", "p99 ms", "users", "failures",
                    "client cores", "server cores", "machine busy cores", "of which stolen"], [
        [f"in-process limit (batch {lim['best_batch_size']}, {lim['best_threads']} threads)",
         _f(lim["items_per_s"]), "-", "-", "-", "-", 0, "-", "-", "-", "-"],
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
    return lines


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """(Re)compute every round's ratios and targets, then the medians over the rounds, in place."""
    from bench import repeats

    cores = results["machine"]["cores_usable"]
    if "rounds" not in results:  # schema 1: one round, stored at the top level
        results["rounds"] = [{"workloads": results["workloads"], "cold_start": results["cold_start"]}]
        results["schema"] = SCHEMA_VERSION
    for one_round in results["rounds"]:
        for r in one_round["workloads"].values():
            r["ratios"] = ratios(r, cores)
        one_round["targets"] = targets(one_round, cores)
    names = list(results["rounds"][0]["workloads"])
    results["workloads"] = {name: repeats.summarize_workload([o["workloads"][name] for o in results["rounds"]])
                            for name in names}
    results["cold_start"] = repeats.combine_cold_starts([o["cold_start"] for o in results["rounds"]])
    results["targets"] = repeats.combine_targets([o["targets"] for o in results["rounds"]])
    return results


# --- well-formedness (the smoke test) -------------------------------------------------------------

REQUIRED_WORKLOAD_KEYS = ("kind", "serving", "limit", "served", "batch1", "half_load", "peer", "ratios")


def write_json(path: Path, data: Any) -> Path:
    """`data` as indented JSON at `path`, its folder created: every results file the bench writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def problems(results: dict[str, Any]) -> list[str]:
    """What is missing or malformed in a results dict (empty when well-formed)."""
    found = []
    for key in ("schema", "machine", "settings", "rounds", "workloads", "cold_start", "targets", "duration_s"):
        if key not in results:
            found.append(f"missing {key}")
    if not results.get("rounds"):
        found.append("no rounds")
    for number, one_round in enumerate(results.get("rounds") or [], 1):
        for name, r in one_round.get("workloads", {}).items():
            found += [f"round {number} {name}: missing {k}" for k in REQUIRED_WORKLOAD_KEYS if k not in r]
            if not (r.get("limit") or {}).get("items_per_s", 0) > 0:
                found.append(f"round {number} {name}: no in-process limit")
            for part in ("served", "peer"):
                if not (r.get(part) or {}).get("saturation"):
                    found.append(f"round {number} {name}: no {part} saturation point")
        if not (one_round.get("cold_start") or {}).get("seconds", 0) > 0:
            found.append(f"round {number}: no cold start time")
    for name, w in results.get("workloads", {}).items():
        if not w.get("ratios"):
            found.append(f"{name}: no median ratios")
    if not (results.get("cold_start") or {}).get("seconds", 0) > 0:
        found.append("no cold start time")
    return found


def main(argv: list[str] | None = None) -> int:
    """Re-render latest.md (ratios, medians and targets recomputed) from a latest.json."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", type=Path, nargs="?", default=Path(__file__).parent / "results" / "latest.json")
    args = parser.parse_args(argv)
    results = summarize(json.loads(args.results.read_text()))
    write_json(args.results, results)
    args.results.with_suffix(".md").write_text(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
