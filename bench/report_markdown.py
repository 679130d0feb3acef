"""The results dict (summarised: ratios, medians, targets) -> latest.md: the machine, the headline
ratios, the targets and why the misses happen, then every workload's measurements round by round.
"""
from __future__ import annotations

from typing import Any

from bench.peer_results import peers_of
from bench.targets import breakdown_text, limit_config


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
            ("client cores at saturation", "client_cores_at_saturation"), ("client-bound", "client_bound"),
            ("OIP x1 items/s / limit", "oip_1_items_over_limit"), ("OIP x8 items/s / limit", "oip_8_items_over_limit"),
            ("OIP x32 items/s / limit", "oip_32_items_over_limit")]


def markdown(results: dict[str, Any]) -> str:
    """The whole of latest.md."""
    lines = [*_run_and_machine(results), *_headline(results), *_targets(results)]
    for name in results["workloads"]:
        lines += _workload_section(results, name)
    return "\n".join(lines) + "\n"


def _run_and_machine(results: dict[str, Any]) -> list[str]:
    """The title, how the run was made and the machine it ran on."""
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
    return lines


def _headline(results: dict[str, Any]) -> list[str]:
    """The headline ratios (median and range over the rounds), the plots and the cold start."""
    lines = ["## Headline ratios", ""]
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
                  f"**{_spread(cold.get('seconds'), cold.get('values'), 1)} s** to every model READY.", ""]
    return lines


def _targets(results: dict[str, Any]) -> list[str]:
    """The targets table, then why each missed target is missed."""
    many = len(results["rounds"]) > 1
    lines = ["## Targets", ""]
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
    return lines


def _workload_section(results: dict[str, Any], name: str) -> list[str]:
    """One workload: what it is and how it was served, then its details in every round."""
    w = results["workloads"][name]
    rounds = results["rounds"]
    many = len(rounds) > 1
    lines = ["", f"## {name}", "", f"{w['note']}. Spec `{w['spec']}`; served with "
             f"{', '.join(f'{k}={v}' for k, v in w['serving'].items())}, torch_threads="
             f"{w['torch_threads_per_worker']} per worker; {w['payloads']['count']} distinct request bodies "
             f"(digest {w['payloads']['digest']}), the same for every measurement."]
    for number, one_round in enumerate(rounds, 1):
        r = one_round["workloads"].get(name)
        if r:
            if many:
                lines += ["", f"### {name}, round {number} of {len(rounds)}"]
            lines += ["", *_workload_details(r)]
    return lines


def _workload_details(r: dict[str, Any]) -> list[str]:
    """One round of one workload: its steps, the in-process split, the sweeps and the flags."""
    lim = r["limit"]
    sat = r["served"]["saturation"]
    peers = peers_of(r)
    header = ["measurement", "req/s", "p50 ms", "p95 ms", "p99 ms", "users", "failures",
              "client cores", "server cores", "machine busy cores", "of which stolen"]
    rows = [[f"in-process limit ({limit_config(lim)})", _f(lim["items_per_s"]), "-", "-", "-", "-", 0, "-", "-",
             "-", "-"],
            _step_row("TorchServe at saturation", sat),
            _step_row("TorchServe batchSize=1, same users", r["batch1"]),
            _step_row("TorchServe at half saturation (open loop)", r["half_load"])]
    if r.get("floor"):
        rows.append(_step_row("TorchServe no-op handler, batch 1 (the frontend hop)", r["floor"]))
    rows += [_step_row(f"{p['label']} at saturation ({p['processes']} processes)", p.get("saturation"))
             for p in peers.values() if "not_run" not in p]
    oip = r.get("oip") or {}
    rows += [_step_row(f"TorchServe OIP, {n} instance(s) per request, at saturation", o.get("saturation"))
             for n, o in oip.items()]
    lines = _table(header, rows)
    if oip:
        lines += ["", "OIP (req/s above counts requests): items/s at saturation against the limit "
                  f"{_f(lim['items_per_s'])}: " + "; ".join(
                      f"{n} per request {_f(o.get('items_per_s'))} ({_f(r['ratios'].get(f'oip_{n}_items_over_limit'), 2)})"
                      for n, o in oip.items()) + ". Sweeps (users: req/s, p99 ms): " + "; ".join(
                      f"x{n} " + ", ".join(f"{s['users']}: {_f(s['rps'], 0)}, {_f(s['p99_ms'], 0)}" for s in o["sweep"])
                      for n, o in oip.items()) + "."]
        for n, o in oip.items():
            if o.get("breakdown"):
                lines += ["", f"OIP x{n} at 1 user, where a request's time goes (mean ms over "
                              f"{o['breakdown']['requests']} requests): {breakdown_text(o['breakdown'])}."]
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
                  f"requests): {breakdown_text(r['breakdown'])}."]
    steps = [sat, r["batch1"], r["half_load"], *[p.get("saturation") for p in peers.values()],
             *[o.get("saturation") for o in oip.values()]]
    flags = sorted({f for s in steps if s for f in s["flags"]})
    if flags:
        lines += ["", "Flags:", "", *[f"- {f}" for f in flags]]
    return lines
