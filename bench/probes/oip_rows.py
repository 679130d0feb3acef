"""`make bench`'s OIP rows alone (issue 25), for when the whole bench is too long: per workload the
true limit (limit.py, every core split and batch size, as the bench runs it), then one TorchServe
with the spec's serving settings: the /predictions saturation sweep (the bench's "served") and the
OIP sweeps of 1, 8 and 32 instances per request (oip_rows.py), all in items/s against the limit.

    python -m bench.probes.oip_rows [--workloads digits langid mobilenet] [--budget 230] [--rounds 1]

Windows follow `--budget` as in `make bench` (Plan.from_budget). Writes build/bench/oip/latest.json
and prints a table; nothing here is judged or committed as a bench result.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import locust  # noqa: F401  (first: gevent monkey-patching, before anything opens a socket)

from bench import archives, loadgen, oip_rows, servers
from bench.report import write_json
from bench.run import Plan
from bench.workloads import Workload, ensure_archives, run_folder, workloads
from handlers.runtime import usable_cores
from handlers.settings import HandlerSettings, ServingSettings
from stackctl import paths
from stackctl.catalog.archive_files import read_config

OUT = paths.BUILD / "bench" / "oip"


def one_workload(w: Workload, plan: Plan, folder: Path, log=print) -> dict[str, Any]:
    """The limit, then /predictions and OIP x1/x8/x32 on one TorchServe."""
    store = archives.fresh_store(folder)
    tuned = servers.variant(w.spec, w.archive, store, w.name)
    bodies = w.payloads()
    (folder / "payloads.pkl").write_bytes(pickle.dumps([(p.body, p.content_type) for p in bodies]))
    config = read_config(tuned)
    serving = ServingSettings.from_config(config)
    threads = int(HandlerSettings.from_config(config["handler"]).torch_threads)  # a number in a variant
    sizes = sorted({*plan.batch_sizes, serving.batch_size})
    log(f"[{w.name}] in-process limit")
    servers.run_limit(tuned, folder / "payloads.pkl", folder / "limit.json", plan.limit_seconds, sizes,
                      plan.limit_configs(serving.workers, threads))
    limit = json.loads((folder / "limit.json").read_text())
    log(f"    limit {limit['items_per_s']} items/s")
    with servers.torchserve(store, folder / "torchserve", serving.workers) as (stack, _ready):
        pid = stack.proc.pid  # type: ignore[attr-defined]
        log(f"[{w.name}] /predictions")
        target = loadgen.Target("torchserve", stack.inference_url, f"/predictions/{w.name}", pid)
        with loadgen.Load(target, w.spec, bodies) as load:
            best = loadgen.saturation(loadgen.sweep(load, plan.levels, plan.warmup, plan.window, log=log))
        log(f"[{w.name}] OIP")
        oip = oip_rows.measure(w.spec, w.name, stack.inference_url, pid, bodies, plan.levels, plan.warmup,
                               plan.window, stack.metrics_url, fill_users=serving.workers * serving.batch_size, log=log)
    predictions = best.to_json() if best else None
    over = {"predictions": _ratio(best.measured.rps if best else None, limit["items_per_s"]),
            **{f"oip_{n}": _ratio(o["items_per_s"], limit["items_per_s"]) for n, o in oip.items()}}
    return {"serving": {"workers": serving.workers, "batchSize": serving.batch_size,
                        "maxBatchDelay": serving.max_batch_delay}, "limit": limit, "predictions": predictions,
            "oip": oip, "items_over_limit": over}


def _ratio(a: float | None, b: float) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def table(results: dict[str, Any]) -> str:
    lines = ["| workload | round | limit items/s | /predictions | OIP x1 | OIP x8 | OIP x32 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for number, one_round in enumerate(results["rounds"], 1):
        for name, r in one_round.items():
            pred = r["predictions"] or {}
            cells = [f"{pred.get('rps')} ({r['items_over_limit']['predictions']})"]
            cells += [f"{r['oip'][n]['items_per_s']} ({r['items_over_limit'][f'oip_{n}']})" for n in ("1", "8", "32")]
            lines.append(f"| {name} | {number} | {r['limit']['items_per_s']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workloads", nargs="*", default=None)
    parser.add_argument("--budget", type=float, default=230, help="as make bench's BUDGET: sets the windows")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    loadgen.exit_on_sigterm()
    selected = workloads(args.workloads)
    ensure_archives(selected)
    plan = Plan.from_budget(args.budget, False, usable_cores())
    work = run_folder("oip")
    log = lambda line: print(line, flush=True)  # noqa: E731
    results: dict[str, Any] = {"settings": {"budget_s": args.budget, "window_s": plan.window, "warmup_s": plan.warmup},
                               "rounds": []}
    for number in range(1, args.rounds + 1):
        results["rounds"].append({w.name: one_workload(w, plan, work / f"round-{number}" / w.name, log)
                                  for w in selected})
    write_json(args.out / "latest.json", results)
    print("\nitems/s (over the limit):\n" + table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
