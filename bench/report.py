"""Results -> ratios, the issue's targets (met or not, and the measurement that says why), Markdown.

Plain functions over the results dict (no Locust, no torch) so unit tests can check them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.peer_results import peers_of

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
    return out


def _limit_config(limit: dict[str, Any]) -> str:
    return (f"{limit.get('best_processes', 1)} process(es) x {limit['best_threads']} threads, "
            f"batch {limit['best_batch_size']}")


def _target(name: str, workload: str | None, value: float | None, op: str, threshold: Any, why: str = "",
            goal: str | None = None, steps: list[dict[str, Any] | None] | None = None) -> dict[str, Any]:
    from bench.repeats import meets

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
    floor = min((s for s in r["served"]["sweep"] if s["p99_ms"] is not None), key=lambda s: s["p99_ms"], default={})
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
            + (f"; 1 user on the model, mean ms: {_breakdown_text(r['breakdown'])}" if r.get("breakdown") else "")
            + f". TorchServe's own saturation: {sat.get('rps')} req/s at p99 {sat.get('p99_ms')} ms.")


def _breakdown_text(b: dict[str, Any]) -> str:
    return ", ".join(f"{k.removesuffix(' ms')} {v}" for k, v in b.items() if k != "requests")


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
                 f"{lim['items_per_s']} items/s ({_limit_config(lim)}); " if v is not None and v > 1.0 else "")
        out.append(_target("served / true limit", name, v, "between", [SERVED_OVER_LIMIT_MIN, 1.0],
                           f"{error}at saturation the load generator used {sat.get('client_cores')} cores, "
                           f"TorchServe {sat.get('server_cores')}, the machine {sat.get('machine_busy_cores')} of "
                           f"{cores}; the limit ({_limit_config(lim)}) had every core. Cost per item: in-process "
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


HEADLINE = [("served / true limit", "served_over_limit"),
            ("batching gain", "batching_gain"), ("in-process batching gain", "inprocess_batching_gain"),
            ("vs FastAPI at its p99 (same processes)", "served_over_fastapi_within_p99"),
            ("vs best batching peer at its p99", "served_over_batching_peer_within_p99"),
            ("served / FastAPI (max req/s)", "served_over_fastapi"),
            ("served / LitServe (max req/s)", "served_over_litserve"),
            ("served / BentoML (max req/s)", "served_over_bentoml"),
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
                 ["peers", f"fastapi {m['fastapi']} + uvicorn {m['uvicorn']}"
                  + (f", litserve {m['litserve']}" if m.get("litserve") else "")
                  + (f", bentoml {m['bentoml']}" if m.get("bentoml") else "")
                  + (" (as many processes as TorchServe's workers)" if m.get("litserve") else ", 1 process")],
                 ["runtime env (every measured process)", results["settings"]["runtime_env"]],
                 ["load average before / after", f"{results['load_average_before']} / {results['load_average_after']}"],
             ]), ""]
    if any("peers" not in r for o in rounds for r in o["workloads"].values()):
        lines += ["Measured before the fair yardsticks: one FastAPI process as the peer, a one-process limit, no "
                  "batching peer; re-rendered with today's targets, so a served / limit above 1.0 shows as the "
                  "measurement error it was.", ""]
    lines += ["## Headline ratios", ""]
    columns = [(label, key) for label, key in HEADLINE if any(key in w["ratios"] for w in results["workloads"].values())]
    rows = [[name, *[_spread(w["ratios"].get(key), w.get("rounds", {}).get(key)) for _, key in columns]]
            for name, w in results["workloads"].items()]
    lines += _table(["workload", *[label for label, _ in columns]], rows)
    pictures = [name for name in results["workloads"] if results.get("plots", {}).get(name)]
    if pictures:
        lines += ["", "Throughput against p99 (every round; the line is the true limit):", "",
                  *[f"![{name}]({results['plots'][name]})" for name in pictures]]
    cold = results.get("cold_start") or {}
    lines += ["", f"Cold start ({', '.join(cold.get('models', []))}, {cold.get('workers')} workers): "
                  f"**{_spread(cold.get('seconds'), cold.get('values'), 1)} s** to every model READY.", "",
              "## Targets", ""]
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
    peers = peers_of(r)
    header = ["measurement", "req/s", "p50 ms", "p95 ms", "p99 ms", "users", "failures",
              "client cores", "server cores", "machine busy cores", "of which stolen"]
    rows = [[f"in-process limit ({_limit_config(lim)})", _f(lim["items_per_s"]), "-", "-", "-", "-", 0, "-", "-",
             "-", "-"],
            _step_row("TorchServe at saturation", sat),
            _step_row("TorchServe batchSize=1, same users", r["batch1"]),
            _step_row("TorchServe at half saturation (open loop)", r["half_load"])]
    if r.get("floor"):
        rows.append(_step_row("TorchServe no-op handler, batch 1 (the frontend hop)", r["floor"]))
    rows += [_step_row(f"{p['label']} at saturation ({p['processes']} processes)", p.get("saturation"))
             for p in peers.values() if "not_run" not in p]
    lines = _table(header, rows)
    by_config = lim.get("by_config") or [{"processes": 1, **t} for t in lim["by_threads"]]
    lines += ["", f"In-process: decode alone {lim['decode_items_per_s']} items/s; forward + top-k alone at "
                  f"batch {lim['best_batch_size']}: {lim['forward_items_per_s_at_best_batch']} items/s. "
                  "Limit by processes x threads: " + "; ".join(
                      f"{c['processes']} x {c['threads']}: " + ", ".join(f"b{s['batch_size']} {s['items_per_s']:g}"
                                                                        for s in c["sweep"]) for c in by_config),
              "", "Sweeps (users: req/s, p99 ms): TorchServe " + ", ".join(
                  f"{s['users']}: {_f(s['rps'], 0)}, {_f(s['p99_ms'], 0)}" for s in r["served"]["sweep"])
              + "".join(f"; {p['label']} " + ", ".join(f"{s['users']}: {_f(s['rps'], 0)}, {_f(s['p99_ms'], 0)}"
                                                     for s in p["sweep"])
                        for p in peers.values() if "not_run" not in p) + "."]
    not_run = [f"- {p['label']}: not run: {p['not_run']}" for p in peers.values() if "not_run" in p]
    lines += ["", *not_run] if not_run else []
    if r.get("breakdown"):
        lines += ["", f"TorchServe at 1 user, where a request's time goes (mean ms over {r['breakdown']['requests']} "
                  f"requests): {_breakdown_text(r['breakdown'])}."]
    steps = [sat, r["batch1"], r["half_load"], *[p.get("saturation") for p in peers.values()]]
    flags = sorted({f for s in steps if s for f in s["flags"]})
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

REQUIRED_WORKLOAD_KEYS = ("kind", "serving", "limit", "served", "batch1", "half_load", "ratios")


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
            if not (r.get("served") or {}).get("saturation"):
                found.append(f"round {number} {name}: no served saturation point")
            if "peers" not in r and "peer" not in r:
                found.append(f"round {number} {name}: missing peers")
            for peer, p in peers_of(r).items() if ("peers" in r or "peer" in r) else []:
                if "not_run" not in p and not p.get("saturation"):
                    found.append(f"round {number} {name}: no {peer} saturation point")
        if not (one_round.get("cold_start") or {}).get("seconds", 0) > 0:
            found.append(f"round {number}: no cold start time")
    for name, w in results.get("workloads", {}).items():
        if not w.get("ratios"):
            found.append(f"{name}: no median ratios")
    if not (results.get("cold_start") or {}).get("seconds", 0) > 0:
        found.append("no cold start time")
    return found


def main(argv: list[str] | None = None) -> int:
    """Re-render latest.md and its PNGs (ratios, medians and targets recomputed) from a latest.json."""
    import argparse

    from bench import plot  # matplotlib: only when drawing

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", type=Path, nargs="?", default=Path(__file__).parent / "results" / "latest.json")
    args = parser.parse_args(argv)
    results = summarize(json.loads(args.results.read_text()))
    results["plots"] = plot.draw_all(results, args.results)
    write_json(args.results, results)
    args.results.with_suffix(".md").write_text(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
