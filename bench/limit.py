"""The limit: the archive's own handler (decode -> preprocess -> forward -> postprocess) in-process.

    python -m bench.limit --archive X.mar --payloads bodies.pkl --seconds 2 --out limit.json

One process, all usable cores (torch threads = cores), no HTTP, no queue, no IPC: what serving
could reach at best with this code on this machine. Each batch size runs for `--seconds`; the
best items/s is the limit. To explain where the time goes it also times, per item, the decode
alone (request body -> model tensor) and, at the best batch size, the forward pass alone.
Runs as its own process so that the bench's Locust (gevent) and this measurement never share one.
"""
from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report import write_json

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


def timed(work: Callable[[], int], seconds: float, min_rounds: int = 3) -> tuple[float, int]:
    """(items/s, rounds): repeat `work` (returns items done) for about `seconds`, after one warm-up."""
    work()
    items, rounds = 0, 0
    started = time.perf_counter()
    while rounds < min_rounds or time.perf_counter() - started < seconds:
        items += work()
        rounds += 1
    return items / (time.perf_counter() - started), rounds


def measure(archive: Path, bodies: list[tuple[bytes, str]], seconds: float,
            batch_sizes: tuple[int, ...] = BATCH_SIZES, threads: tuple[int, ...] | None = None) -> dict[str, Any]:
    import torch

    from handlers.runtime import usable_cores
    from handlers.topk import top_k
    from stackctl.inprocess import InProcessModel, Request

    gpu_id = 0 if torch.cuda.is_available() else None  # as TorchServe assigns gpu_id
    model = InProcessModel(archive, gpu_id=gpu_id)
    handler = model.handler
    requests = [Request(body, content_type) for body, content_type in bodies]
    position = [0]

    def next_batch(size: int) -> list[Request]:
        start = position[0]
        position[0] = (start + size) % len(requests)
        return [requests[(start + i) % len(requests)] for i in range(size)]

    def run(size: int) -> int:
        answers = model.predict(next_batch(size))
        bad = [status for status, _ in answers if status != 200]
        if bad:
            raise RuntimeError(f"in-process handler answered {bad[:3]} for the bench inputs")
        return size

    # One process may use every core; fewer intra-op threads can still be faster on a host whose
    # cores are shared, so the limit is the best over thread counts as well as batch sizes.
    by_threads = []
    counts = threads or (usable_cores(),)
    # On a GPU the forward pass does not use torch's CPU threads: one sweep is enough.
    for count in counts if handler.device.type == "cpu" else counts[:1]:
        if handler.device.type == "cpu":
            torch.set_num_threads(count)
        sweep = batch_sweep(run, batch_sizes, seconds)
        best = max(sweep, key=lambda s: s["items_per_s"])
        by_threads.append({"threads": torch.get_num_threads(), "best_batch_size": best["batch_size"],
                           "items_per_s": best["items_per_s"], "sweep": sweep})
    best = max(by_threads, key=lambda t: t["items_per_s"])
    if handler.device.type == "cpu":
        torch.set_num_threads(best["threads"])

    # Where the time goes: the per-item decode alone, then collate + forward + top-k alone.
    decode_rate, _ = timed(lambda: _decode_all(handler, requests[:32]), seconds)
    samples = [handler.decode(r.body, r.content_type) for r in next_batch(best["best_batch_size"])]

    def forward_only() -> int:
        with torch.inference_mode(), handler._autocast():
            logits = handler.forward(handler.collate(samples))
        top_k(logits, handler.labels, handler.k)
        return len(samples)

    forward_rate, _ = timed(forward_only, seconds)
    return {
        "best_batch_size": best["best_batch_size"], "items_per_s": best["items_per_s"],
        "best_threads": best["threads"], "by_threads": by_threads,
        "decode_items_per_s": round(decode_rate, 2),
        "forward_items_per_s_at_best_batch": round(forward_rate, 2),
        "device": str(handler.device),
    }


def batch_sweep(run: Callable[[int], int], batch_sizes: tuple[int, ...], seconds: float) -> list[dict[str, Any]]:
    sweep: list[dict[str, Any]] = []
    for size in batch_sizes:
        rate, rounds = timed(lambda size=size: run(size), seconds)
        sweep.append({"batch_size": size, "items_per_s": round(rate, 2), "rounds": rounds})
        # Past the knee more batching only adds latency: stop after two steps without 3% gain.
        best = max(s["items_per_s"] for s in sweep)
        if len(sweep) >= 3 and sweep[-3]["items_per_s"] == best and all(s["items_per_s"] < 1.03 * best
                                                                         for s in sweep[-2:]):
            break
    return sweep


def _decode_all(handler: Any, requests: list[Any]) -> int:
    for r in requests:
        handler.decode(r.body, r.content_type)
    return len(requests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--payloads", type=Path, required=True, help="pickled [(body, content type)]")
    parser.add_argument("--seconds", type=float, default=2.0, help="per batch size")
    parser.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)))
    parser.add_argument("--threads", default="", help="torch thread counts to try, e.g. 2,1 (default: all cores)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    bodies = pickle.loads(args.payloads.read_bytes())
    sizes = tuple(int(s) for s in args.batch_sizes.split(","))
    threads = tuple(int(t) for t in args.threads.split(",") if t) or None
    result = measure(args.archive, bodies, args.seconds, sizes, threads)
    write_json(args.out, result)
    print(f"limit {args.archive.stem}: {result['items_per_s']} items/s at batch {result['best_batch_size']}, "
          f"{result['best_threads']} threads", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
