"""The limit: the archive's own handler and model core (decode -> collate -> forward -> top-k) in-process,
at every split of this host's cores into processes x torch threads.

    python -m bench.limit --archive X.mar --payloads bodies.pkl --seconds 2 --configs 1x2,2x1 --out limit.json

No HTTP, no queue, no IPC: what serving could reach at best with this code on these cores. A bound
on serving has to try what the server itself does with the cores — TorchServe runs each model in
several worker processes — so each configuration runs `processes` copies of the handler at once,
each with `threads` torch threads, every batch size for `--seconds` in a common window (a shared
start time on the system-wide monotonic clock, so no copy runs alone while another loads). The
best summed items/s over configurations and batch sizes is the limit. To explain where the time
goes it also times, per item, the decode alone and, at the best batch size, the forward pass alone.
Runs as its own process so that the bench's Locust (gevent) and this measurement never share one.
"""
from __future__ import annotations

import argparse
import multiprocessing
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report import write_json

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
START_LEAD_S = 0.2  # every copy is loaded and warm before the shared start time: only the hand-off
WARMUP_S = 0.3      # per batch size, before its window: oneDNN builds its kernels for a new shape


def timed(work: Callable[[], int], seconds: float, min_rounds: int = 3) -> tuple[float, int]:
    """(items/s, rounds): repeat `work` (returns items done) for about `seconds`, after one warm-up."""
    work()
    items, rounds = 0, 0
    started = time.perf_counter()
    while rounds < min_rounds or time.perf_counter() - started < seconds:
        items += work()
        rounds += 1
    return items / (time.perf_counter() - started), rounds


def _load(archive: Path, bodies: list[tuple[bytes, str]], threads: int | None) -> tuple[Any, Callable[[int], int]]:
    """(the in-process model, run(batch size) -> items): the handler answering the bench's bodies."""
    import torch

    from stackctl.catalog.inprocess import InProcessModel, Request

    model = InProcessModel(archive, gpu_id=0 if torch.cuda.is_available() else None)  # as TorchServe assigns gpu_id
    if threads and model.handler.core.device.type == "cpu":
        torch.set_num_threads(threads)
    requests = [Request(body, content_type) for body, content_type in bodies]
    position = [0]

    def run(size: int) -> int:
        start = position[0]
        position[0] = (start + size) % len(requests)
        answers = model.predict([requests[(start + i) % len(requests)] for i in range(size)])
        bad = [status for status, _ in answers if status != 200]
        if bad:
            raise RuntimeError(f"in-process handler answered {bad[:3]} for the bench inputs")
        return size

    return model, run


def _copy(archive: Path, bodies: list[tuple[bytes, str]], threads: int, batch_sizes: tuple[int, ...],
          seconds: float, ready: Any, starts: Any, results: Any) -> None:
    """One process of a configuration: per batch size, items done within the shared window."""
    _model, run = _load(archive, bodies, threads)
    for size in batch_sizes:
        warm_until = time.monotonic() + WARMUP_S
        run(size)
        while time.monotonic() < warm_until:
            run(size)
        ready.put(size)
        start = starts.get()
        while time.monotonic() < start:
            time.sleep(0.001)
        items, last = 0, start
        while time.monotonic() < start + seconds:
            items += run(size)
            last = time.monotonic()
        # Items over the time this copy was busy: a last batch that ran past the window counts whole.
        results.put((size, items, max(last - start, 1e-9)))


def config_sweep(archive: Path, bodies: list[tuple[bytes, str]], processes: int, threads: int,
                 batch_sizes: tuple[int, ...], seconds: float) -> list[dict[str, Any]]:
    """[{batch_size, items_per_s}]: `processes` copies running each batch size at the same time."""
    ctx = multiprocessing.get_context("spawn")  # torch and fork do not mix; each copy loads its own
    ready, starts, results = ctx.Queue(), ctx.Queue(), ctx.Queue()
    copies = [ctx.Process(target=_copy, args=(archive, bodies, threads, batch_sizes, seconds, ready, starts, results),
                          daemon=True) for _ in range(processes)]
    for p in copies:
        p.start()
    sweep = []
    try:
        for size in batch_sizes:
            for _ in copies:
                ready.get(timeout=600)
            start = time.monotonic() + START_LEAD_S
            for _ in copies:
                starts.put(start)
            got = [results.get(timeout=600 + seconds) for _ in copies]
            sweep.append({"batch_size": size, "items_per_s": round(sum(n / t for _, n, t in got), 2),
                          "per_process": [round(n / t, 2) for _, n, t in got]})
    finally:
        for p in copies:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    return sweep


def measure(archive: Path, bodies: list[tuple[bytes, str]], seconds: float,
            batch_sizes: tuple[int, ...] = BATCH_SIZES, configs: tuple[tuple[int, int], ...] = ((1, 1),),
            ) -> dict[str, Any]:
    from handlers.inputs import Request

    by_config = []
    for processes, threads in configs:
        sweep = config_sweep(archive, bodies, processes, threads, batch_sizes, seconds)
        best = max(sweep, key=lambda s: s["items_per_s"])
        by_config.append({"processes": processes, "threads": threads, "best_batch_size": best["batch_size"],
                          "items_per_s": best["items_per_s"], "sweep": sweep})
    best = max(by_config, key=lambda c: c["items_per_s"])

    # Where the time goes, in this process at the best configuration's threads: the per-item decode
    # alone, then collate + forward + top-k alone (the core's `decode` and `predict`).
    model, run = _load(archive, bodies, best["threads"])
    core = model.handler.core
    requests = [Request(body, content_type) for body, content_type in bodies]
    decode_rate, _ = timed(lambda: _decode_all(core, requests[:32]), seconds)
    samples = [core.decode(request) for request in requests[:best["best_batch_size"]]]

    def forward_only() -> int:
        core.predict(samples)
        return len(samples)

    forward_rate, _ = timed(forward_only, seconds)
    return {
        "best_batch_size": best["best_batch_size"], "items_per_s": best["items_per_s"],
        "best_processes": best["processes"], "best_threads": best["threads"], "by_config": by_config,
        "decode_items_per_s": round(decode_rate, 2),
        "forward_items_per_s_at_best_batch": round(forward_rate, 2),
        "device": str(core.device),
    }


def _decode_all(core: Any, requests: list[Any]) -> int:
    for request in requests:
        core.decode(request)
    return len(requests)


def core_splits(cores: int, workers: int, threads_per_worker: int) -> list[tuple[int, int]]:
    """(processes, torch threads) splits of the cores the limit tries: one process with every core,
    TorchServe's own split, and one process per core on a small host (2-4 cores)."""
    configs = {(1, cores), (workers, threads_per_worker)}
    if cores <= 4:
        configs.add((cores, 1))
    return sorted(configs)


def parse_configs(text: str) -> tuple[tuple[int, int], ...]:
    """"1x2,2x1" -> ((1, 2), (2, 1)): processes x torch threads each."""
    return tuple((int(p), int(t)) for p, t in (c.split("x") for c in text.split(",") if c))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--payloads", type=Path, required=True, help="pickled [(body, content type)]")
    parser.add_argument("--seconds", type=float, default=2.0, help="per batch size and configuration")
    parser.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)))
    parser.add_argument("--configs", default="1x1", help="processes x torch threads, e.g. 1x2,2x1")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    bodies = pickle.loads(args.payloads.read_bytes())
    sizes = tuple(int(s) for s in args.batch_sizes.split(","))
    result = measure(args.archive, bodies, args.seconds, sizes, parse_configs(args.configs))
    write_json(args.out, result)
    print(f"limit {args.archive.stem}: {result['items_per_s']} items/s at batch {result['best_batch_size']}, "
          f"{result['best_processes']} x {result['best_threads']} threads", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
