"""`make bench`: the stack against its true in-process limit and its peers, in one run.

    python -m bench.run [--budget 230] [--repeat 3] [--quick] [--workloads NAME ...] [--out bench/results]

Workloads (workloads.py): every model spec plus the bench-only ones; `--quick` alone takes the
served models only. Per workload, one after another so that only one server is loaded at a time:
  1. the true limit: the archive's handler in-process at every processes x threads split of the
     cores and every batch size (limit.py);
  2. the peers (peers.py: FastAPI, LitServe, BentoML) with TorchServe's worker count: closed-loop
     concurrency sweeps; a peer that cannot run here is recorded as "not run: <reason>";
  3. TorchServe with the spec's serving settings: the same sweep -> saturation (max req/s with
     zero errors) and p50/p95/p99 there; the same concurrency with batchSize=1 (batching gain);
     an open-loop run at half the saturation rate (latency under moderate load); the floor
     (floor.py: a no-op handler at 1 user, and 1 user on the model with the server's counters);
     then the OIP rows (oip_rows.py): Open Inference Protocol requests of 1, 8 and 32 instances,
     a sweep each, reported as items/s against the true limit.
Then the cold start: TorchServe on a store with every workload's archive, seconds until every
model has a READY worker. That is one round; `--repeat` runs the rounds one after another and the
report judges every target on its median over them (repeats.py). Writes <out>/latest.json,
<out>/latest.md (report.py) and <out>/latest-<workload>.png (plot.py). `--budget` (seconds)
scales every measuring window; the run prints its expected length at the start.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import locust  # noqa: F401  (first: gevent monkey-patching, before anything opens a socket)

from bench import archives, floor, limit, loadgen, machine, oip_rows, peers, plot, report, servers
from bench.workloads import (
    Workload,
    all_workloads,
    ensure_archives,
    payload_digest,
    run_folder,
    tidy_run_folder,
    workloads,
)
from handlers.runtime import usable_cores
from handlers.sections import override, written
from handlers.settings import HandlerSettings, ServingSettings
from stackctl import paths
from stackctl.catalog.archive_files import read_config
from stackctl.serve.native import NativeStack

RESULTS = paths.ROOT / "bench" / "results"
LEVELS = [1, 2, 4, 8, 16, 32, 64, 128]  # closed-loop users; TorchServe's job_queue_size is 200
BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64]


@dataclass(frozen=True)
class Plan:
    quick: bool
    window: float          # seconds measured per load step
    warmup: float          # seconds of load before each window (not measured)
    limit_seconds: float   # seconds per batch size in the in-process limit
    levels: list[int]
    batch_sizes: list[int]
    cores: int             # the limit splits these into processes x threads

    @classmethod
    def from_budget(cls, budget: float, quick: bool, cores: int) -> Plan:
        if quick:  # the smoke test: does it run and write well-formed results
            return cls(True, 1.0, 0.5, 0.2, [2, 8], [1, 8], cores)
        window = min(10.0, max(2.0, budget / 100))
        # The limit's windows: at least 1 s per batch size, so mobilenet's batch of 64 (~0.5 s on 1 core)
        # runs a few times in each and one slow call does not decide a point.
        return cls(False, window, max(1.0, window / 3), min(3.0, max(1.0, window / 2)), LEVELS, BATCH_SIZES, cores)

    def limit_configs(self, workers: int, threads_per_worker: int) -> list[tuple[int, int]]:
        if self.quick:  # does it run: TorchServe's own split is enough
            return [(workers, threads_per_worker)]
        return limit.core_splits(self.cores, workers, threads_per_worker)

    def expected_round_s(self, workloads: int, peers: int) -> float:
        """A rough round length: ~6 load steps per sweep (until throughput stops rising) and a server
        start for each server; the limit's windows at 2-3 splits; half load, batchSize=1, the floor."""
        step = self.warmup + self.window
        sweep = 6 * step + 12
        limit = len(self.batch_sizes) * (self.limit_seconds + 0.6) * 2 + 20  # + warm-up and hand-off
        served = sweep + 3 * self.window + 3 * step + len(oip_rows.INSTANCES) * 5 * step
        return workloads * (limit + peers * sweep + served) + 30  # + the cold start


def bench_workload(w: Workload, plan: Plan, work: Path, log=print) -> dict[str, Any]:
    """One workload, one round: the in-process limit, the peers, then TorchServe."""
    folder = work / w.name
    store = archives.fresh_store(folder)
    tuned = servers.variant(w.spec, w.archive, store, w.name)
    servers.variant(w.spec, w.archive, store, f"{w.name}-b1", serving=override(w.spec.serving, batch_size=1))
    floor.noop_variant(w.spec, w.archive, store, w.name)
    bodies = w.payloads()
    payload_file = folder / "payloads.pkl"
    payload_file.write_bytes(pickle.dumps([(p.body, p.content_type) for p in bodies]))
    config = read_config(tuned)
    serving = ServingSettings.from_config(config)
    result: dict[str, Any] = {
        "kind": w.kind, "note": w.note, "spec": str(paths.shown(w.spec.source)),
        "serving": written(serving),
        "torch_threads_per_worker": HandlerSettings.from_config(config["handler"]).torch_threads,
        "payloads": {"count": len(bodies), "digest": payload_digest(bodies)},
        "slo": {"p95_ms": w.spec.slo.p95_ms, "p99_ms": w.spec.slo.p99_ms},
    }

    workers = serving.workers
    threads = result["torch_threads_per_worker"]
    configs = plan.limit_configs(workers, threads)
    sizes = sorted({*plan.batch_sizes, serving.batch_size})
    log(f"[{w.name}] 1/3 in-process limit (processes x threads {configs}, batch sizes {sizes})")
    servers.run_limit(tuned, payload_file, folder / "limit.json", plan.limit_seconds, sizes, configs)
    result["limit"] = json.loads((folder / "limit.json").read_text())
    log(f"    limit {result['limit']['items_per_s']} items/s (batch {result['limit']['best_batch_size']}, "
        f"{result['limit']['best_processes']} x {result['limit']['best_threads']} threads)")

    result["peers"] = {}
    for peer in peers.PEERS:
        log(f"[{w.name}] 2/3 peer {peer.name} ({workers} processes x {threads} threads)")
        result["peers"][peer.name] = run_peer(peer, w, tuned, serving, bodies, plan, folder, log)

    log(f"[{w.name}] 3/3 TorchServe ({', '.join(f'{k}={v}' for k, v in result['serving'].items())})")
    with servers.torchserve(store, folder / "torchserve", workers) as (stack, ready_s):
        result["server_start_s"] = round(ready_s, 2)
        result.update(measure_torchserve(w, stack, bodies, plan, log))
        log(f"[{w.name}] OIP, {', '.join(map(str, oip_rows.INSTANCES))} instances per request")
        result["oip"] = oip_rows.measure(w.spec, w.name, stack.inference_url, stack.proc.pid,  # type: ignore[attr-defined]
                                         bodies, plan.levels, plan.warmup, plan.window, stack.metrics_url,
                                         fill_users=serving.workers * serving.batch_size, log=log)
    return result


def measure_torchserve(w: Workload, stack: NativeStack, bodies: list[Any], plan: Plan, log=print) -> dict[str, Any]:
    """TorchServe's part of a workload's results: the sweep and saturation, half load (open loop),
    batchSize=1 at the saturating users, the no-op floor and 1 user's breakdown."""
    pid = stack.proc.pid  # type: ignore[attr-defined]  # servers.torchserve sets it

    def load(label: str, variant: str) -> loadgen.Load:
        return loadgen.Load(loadgen.Target(label, stack.inference_url, f"/predictions/{variant}", pid), w.spec, bodies)

    with load("torchserve", w.name) as served:
        steps = loadgen.sweep(served, plan.levels, plan.warmup, plan.window, log=log)
        best = loadgen.saturation(steps)
        half = None
        if best:
            rate = round(best.measured.rps / 2, 1)
            # 3 windows: at ~100-300 req/s one window's p99 is the ~10th-worst of ~1000
            # requests, and repeated runs of one setting spread 2.3-4.2x (bench/NOTES.md).
            half = served.open_step(rate, plan.warmup, 3 * plan.window)
            m = half.measured
            log(f"    half saturation, open loop {rate} req/s offered: {m.rps} achieved, p50/p95/p99 "
                f"{m.p50_ms}/{m.p95_ms}/{m.p99_ms} ms")
    b1 = None
    if best:
        with load("torchserve batchSize=1", f"{w.name}-b1") as batch1:
            b1 = batch1.closed_step(best.measured.users, plan.warmup, plan.window)
        log(f"    batchSize=1 at {best.measured.users} users: {b1.measured.rps} req/s, p99 {b1.measured.p99_ms} ms")
    # The low-load floor: the no-op handler alone, then where 1 user's request time goes on the model.
    with load("torchserve no-op handler", f"{w.name}-noop") as noop_load:
        noop = noop_load.closed_step(1, plan.warmup, plan.window)
    with load("torchserve", w.name) as served:
        before = floor.counters(stack.metrics_url, w.name)
        one = served.closed_step(1, plan.warmup, plan.window)
        breakdown = floor.breakdown(before, floor.counters(stack.metrics_url, w.name), one.measured.p50_ms)
    log(f"    no-op handler at 1 user: p50/p99 {noop.measured.p50_ms}/{noop.measured.p99_ms} ms; 1 user on the model: "
        f"{breakdown}")
    return {"breakdown": breakdown,
            "served": {"sweep": [s.to_json() for s in steps], "saturation": best.to_json() if best else None},
            "batch1": b1.to_json() if b1 else None, "half_load": half.to_json() if half else None,
            "floor": noop.to_json()}


def run_peer(peer: peers.Peer, w: Workload, archive: Path, serving: ServingSettings, bodies: list[Any], plan: Plan,
             folder: Path, log=print) -> dict[str, Any]:
    """One peer's closed-loop sweep on the same bodies, or why it did not run here."""
    described = peer.describe(serving)
    missing = peer.missing()
    if missing:
        log(f"    not run: {missing}")
        return {**described, "not_run": missing}
    try:
        with servers.peer(peer.command(archive, w.name, serving), folder / f"peer-{peer.name}", peer.health,
                          python=peer.python()) as (url, proc):
            target = loadgen.Target(peer.label, url, f"/predictions/{w.name}", proc.pid)
            with loadgen.Load(target, w.spec, bodies) as load:
                steps = loadgen.sweep(load, plan.levels, plan.warmup, plan.window, log=log)
    except servers.PeerNotRun as exc:
        log(f"    not run: {exc}")
        return {**described, "not_run": str(exc)}
    best = loadgen.saturation(steps)
    return {**described, "sweep": [s.to_json() for s in steps], "saturation": best.to_json() if best else None}


def cold_start(selected: list[Workload], work: Path, log=print) -> dict[str, Any]:
    """TorchServe started on the built archives (spec settings) until every model is READY."""
    store = archives.fresh_store(work / "cold-start")
    workers = 0
    for w in selected:
        servers.variant(w.spec, w.archive, store, w.name)
        workers += w.spec.serving.workers
    with servers.torchserve(store, work / "cold-start" / "torchserve", workers) as (_stack, ready_s):
        pass
    log(f"[cold start] {', '.join(w.name for w in selected)}: every model READY after {ready_s:.1f} s")
    return {"seconds": round(ready_s, 2), "models": [w.name for w in selected], "workers": workers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--budget", type=float, default=230, help="about how long the run takes, seconds")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; targets are judged on their medians")
    parser.add_argument("--quick", action="store_true", help="smallest run that exercises every measurement")
    known = all_workloads()
    parser.add_argument("--workloads", nargs="*", default=None, choices=list(known),
                        help=f"default: all ({' '.join(known)}); with --quick, the served models only")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for latest.json and latest.md")
    args = parser.parse_args(argv)
    loadgen.exit_on_sigterm()
    started = time.time()
    selected = workloads(args.workloads, served_only=args.quick)
    cores = usable_cores()
    plan = Plan.from_budget(args.budget, args.quick, cores)
    work = run_folder("run")
    ensure_archives(selected)
    results: dict[str, Any] = {
        "schema": report.SCHEMA_VERSION,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "machine": machine.describe(),
        "load_average_before": machine.load_average(),
        "settings": {"budget_s": args.budget, "quick": args.quick, "window_s": plan.window, "warmup_s": plan.warmup,
                     "limit_seconds_per_batch": plan.limit_seconds, "concurrency_levels": plan.levels,
                     "limit_batch_sizes": plan.batch_sizes,
                     "runtime_env": servers.RUNTIME_ENV, "load_generator": "locust FastHttpUser, 1 process (gevent)",
                     "repeat": args.repeat},
        "rounds": [],
    }
    expected = args.repeat * plan.expected_round_s(len(selected), len(peers.PEERS))
    print(f"bench: {', '.join(w.name for w in selected)} on {results['machine']['cpu_model']} "
          f"({cores} cores, {results['machine']['device']}); window {plan.window:g} s per step, "
          f"{args.repeat} round(s), expected ~{expected / 60:.0f} min", flush=True)
    log = lambda line: print(line, flush=True)  # noqa: E731
    for number in range(1, args.repeat + 1):
        folder = work / f"round-{number}"
        if args.repeat > 1:
            log(f"== round {number} of {args.repeat}")
        results["rounds"].append({"workloads": {w.name: bench_workload(w, plan, folder, log=log) for w in selected},
                                  "cold_start": cold_start(selected, folder, log=log)})
        tidy_run_folder(folder)
    results["load_average_after"] = machine.load_average()
    results["duration_s"] = round(time.time() - started, 1)
    report.summarize(results)
    args.out.mkdir(parents=True, exist_ok=True)
    results["plots"] = plot.draw_all(results, args.out / "latest.json")
    report.write_json(args.out / "latest.json", results)
    markdown = report.markdown(results)
    (args.out / "latest.md").write_text(markdown)
    print("\n" + markdown)
    print(f"results: {args.out / 'latest.json'}, {args.out / 'latest.md'} ({results['duration_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
