"""The frontend knobs of issue 19's floor list that rows 13-14 left: Netty threads, the backend
(frontend <-> worker) client threads and job_queue_size, each set through its TS_* variable on the
digits workload. Per setting: 1 user on the no-op handler (the frontend hop), 1 user on digits
(the floor a client sees) and 32 users on digits (does the knob cost throughput). Settings run
interleaved in rounds, so a busy minute on the host hits every setting alike.

    python -m bench.probes.floor_knobs --rounds 2 --window 4
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from bench import floor, loadgen, servers
from bench.archives import fresh_store
from bench.workloads import all_workloads

SETTINGS: dict[str, dict[str, str]] = {
    "default (netty threads = cores, client threads = cores, queue 200)": {},
    "netty threads 1": {"TS_NUMBER_OF_NETTY_THREADS": "1"},
    "netty threads 4": {"TS_NUMBER_OF_NETTY_THREADS": "4"},
    "backend client threads 1": {"TS_NETTY_CLIENT_THREADS": "1"},
    "job_queue_size 50": {"TS_JOB_QUEUE_SIZE": "50"},
}


def measure(env: dict[str, str], store: Path, run_dir: Path, w, bodies, warmup: float, window: float) -> dict:
    workers = w.spec.serving.workers + 1
    with servers.torchserve(store, run_dir, workers, env=env) as (stack, _ready):
        pid = stack.proc.pid  # type: ignore[attr-defined]
        out = {}
        for label, path, users in (("noop 1 user", f"{w.name}-noop", 1), ("model 1 user", w.name, 1),
                                   ("model 32 users", w.name, 32)):
            target = loadgen.Target(label, stack.inference_url, f"/predictions/{path}", pid)
            with loadgen.Load(target, w.spec, bodies) as load:
                step = load.closed_step(users, warmup, window)
            m = step.measured
            out[label] = {"rps": m.rps, "p50": m.p50_ms, "p99": m.p99_ms, "failures": m.failures,
                          "server_cores": step.cpu.server_cores}
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--window", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--workload", default="digits")
    args = parser.parse_args()
    w = all_workloads()[args.workload]
    work = Path(tempfile.mkdtemp(prefix="floor-knobs-"))
    store = fresh_store(work)
    servers.variant(w.spec, w.archive, store, w.name)
    floor.noop_variant(w.spec, w.archive, store, w.name)
    bodies = w.payloads()
    results: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    for r in range(args.rounds):
        for i, (name, env) in enumerate(SETTINGS.items()):
            got = measure(env, store, work / f"r{r}-{i}", w, bodies, args.warmup, args.window)
            results[name].append(got)
            print(f"round {r + 1} {name}: " + "; ".join(
                f"{k} {v['rps']} req/s p50/p99 {v['p50']}/{v['p99']} ms fail {v['failures']}"
                for k, v in got.items()), flush=True)
    print("\nmedians over rounds:")
    for name, rounds in results.items():
        cells = []
        for step in rounds[0]:
            p50 = statistics.median(r[step]["p50"] or 0 for r in rounds)
            p99 = statistics.median(r[step]["p99"] or 0 for r in rounds)
            rps = statistics.median(r[step]["rps"] for r in rounds)
            cells.append(f"{step}: {rps:.0f} req/s, p50 {p50:.1f} p99 {p99:.1f} ms")
        print(f"  {name}: " + " | ".join(cells))
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"raw: {work / 'results.json'}")


if __name__ == "__main__":
    main()
