"""`make tune`: per model, the serving settings with the most throughput within its p95 SLO.

    python -m bench.tune [--models digits langid mobilenet] [--budget 180] [--dry-run]

Coordinate search, one stage at a time, each stage one TorchServe holding every candidate of the
stage as its own archive variant (archives.py) and measured one after another with the same
closed-loop concurrency sweep as `make bench` (loadgen.py), stopping at the p95 SLO:
  1. workers x torch threads per worker (never more threads in total than cores),
  2. batchSize, at the best of 1,
  3. maxBatchDelay, at the best of 1 and 2.
A candidate's score is its highest req/s with zero errors and p95 within the spec's SLO. The winner
is written back into the spec (config/models/<name>.yaml, or bench/models/ for bench-only models),
editing the values in place so comments stay; rebuild the archives afterwards (`make tune` runs
`python -m stackctl models`). Absolute numbers depend on the host: tune on the hardware you serve on.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import locust  # noqa: F401  (first: gevent monkey-patching)

from bench import archives, loadgen, servers
from bench.report import write_json
from bench.settings import parallelism_options, write_back
from bench.workloads import BENCH_BUILD, Workload, ensure_archives, run_folder, tidy_run_folder, workloads
from handlers.runtime import usable_cores
from handlers.sections import override, written
from handlers.settings import HandlerSettings, ServingSettings
from stackctl import paths
from stackctl.catalog.archive import write_variant
from stackctl.catalog.specs import ModelSpec

Candidate = tuple[str, ServingSettings, HandlerSettings]  # (label, its serving and handler settings)

BATCH_SIZES = (1, 4, 8, 16, 32)
DELAYS_MS = (1, 3, 10, 20)  # >= 1: TorchServe reads 0 as "unset" (100 ms)
LEVELS = [2, 4, 8, 16, 32, 64]


def candidate_settings(spec: ModelSpec, workers: int, threads: int, batch_size: int,
                       max_batch_delay: int) -> tuple[ServingSettings, HandlerSettings]:
    serving = override(spec.serving, min_workers=workers, max_workers=workers, batch_size=batch_size,
                       max_batch_delay=max_batch_delay)
    return serving, override(spec.handler, torch_threads=threads)


def measure_stage(w: Workload, candidates: list[Candidate], window: float, warmup: float,
                  work: Path, log=print) -> dict[str, dict[str, Any]]:
    """One TorchServe with every candidate; each swept in turn. {label: {score, steps}}."""
    store = archives.fresh_store(work / "stage")
    names = {}
    for i, (label, serving, handler) in enumerate(candidates):
        names[label] = f"{w.name}-c{i}"
        write_variant(w.archive, store, names[label], written(serving), written(handler))
    busy_workers = max(s.workers for _, s, _ in candidates)
    bodies = w.payloads()
    out = {}
    with servers.torchserve(store, work / "stage" / "torchserve", busy_workers) as (stack, _ready):
        pid = stack.proc.pid  # type: ignore[attr-defined]
        for label, _serving, _handler in candidates:
            target = loadgen.Target(label, stack.inference_url, f"/predictions/{names[label]}", pid)
            with loadgen.Load(target, w.spec, bodies) as load:
                steps = loadgen.sweep(load, LEVELS, warmup, window, p95_limit_ms=w.spec.slo.p95_ms, log=log)
            best = loadgen.saturation(steps, w.spec.slo.p95_ms)
            out[label] = {"score": best.measured.rps if best else 0.0, "best": best.to_json() if best else None,
                          "steps": [s.to_json() for s in steps]}
            log(f"  {w.name} {label}: {out[label]['score']:.1f} req/s within p95 {w.spec.slo.p95_ms:g} ms")
    return out


def tune(w: Workload, window: float, warmup: float, work: Path, log=print) -> dict[str, Any]:
    cores = usable_cores()
    spec = w.spec
    batch, delay = spec.serving.batch_size, spec.serving.max_batch_delay
    history: list[dict[str, Any]] = []

    def stage(name: str, candidates: list[Candidate]) -> Candidate:
        log(f"[{w.name}] stage {name}: {', '.join(c[0] for c in candidates)}")
        scores = measure_stage(w, candidates, window, warmup, work, log)
        history.append({"stage": name, "scores": {k: v["score"] for k, v in scores.items()},
                        "detail": scores})
        return max(candidates, key=lambda c: scores[c[0]]["score"])

    par: list[Candidate] = [(f"workers={wk} threads={th}", *candidate_settings(spec, wk, th, batch, delay))
                            for wk, th in parallelism_options(cores)]
    _, best_serving, best_handler = stage("workers x threads", par)
    workers, threads = best_serving.workers, best_handler.torch_threads
    sizes: list[Candidate] = [(f"batchSize={b}", *candidate_settings(spec, workers, int(threads), b, delay))
                              for b in BATCH_SIZES]
    _, best_serving, _ = stage("batchSize", sizes)
    batch = best_serving.batch_size
    delays: list[Candidate] = [(f"maxBatchDelay={d}", *candidate_settings(spec, workers, int(threads), batch, d))
                               for d in DELAYS_MS] if batch > 1 else []
    if delays:
        _, best_serving, _ = stage("maxBatchDelay", delays)
    winner = {"minWorkers": workers, "maxWorkers": workers, "batchSize": batch,
              "maxBatchDelay": best_serving.max_batch_delay}
    score = max(history[-1]["scores"].values())  # the winner, measured in the last stage
    return {"winner": winner, "torch_threads": threads, "score_rps": score, "history": history}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models", nargs="*", default=None, help="default: every workload (each model spec, plus mobilenet)")
    parser.add_argument("--budget", type=float, default=180, help="about how many seconds per model")
    parser.add_argument("--dry-run", action="store_true", help="report the winners, leave the specs alone")
    parser.add_argument("--out", type=Path, default=BENCH_BUILD / "tune.json")
    args = parser.parse_args(argv)
    loadgen.exit_on_sigterm()
    selected = workloads(args.models)
    ensure_archives(selected)
    # ~12 candidates x ~4 sweep steps per model
    window = min(10.0, max(1.0, args.budget / 60))
    warmup = max(0.5, window / 3)
    work = run_folder("tune")
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "window_s": window, "models": {}}
    for w in selected:
        result = tune(w, window, warmup, work, log=lambda line: print(line, flush=True))
        report["models"][w.name] = result
        print(f"[{w.name}] winner: {result['winner']}, torch_threads {result['torch_threads']} "
              f"({result['score_rps']:.1f} req/s within p95 {w.spec.slo.p95_ms:g} ms)", flush=True)
        if not args.dry_run:
            write_back(w.spec, result)
            print(f"[{w.name}] written to {w.spec.source.relative_to(paths.ROOT)}", flush=True)
    tidy_run_folder(work)
    write_json(args.out, report)
    print(f"details: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
