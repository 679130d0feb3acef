"""Is one forward pass of a large batch slower per item than several passes of the spec's batch size?

A TorchServe batch of OIP requests of 32 instances is batchSize x 32 samples (mobilenet: 4 x 32 =
128). This probe loads each workload's archive in-process (the repository's own loading code,
`stackctl.catalog.inprocess`), decodes the bench's bodies once, and times the model core's
collate -> forward (`ModelCore.infer`) per item, at every batch size asked, in one process with the
torch threads a worker gets (`--threads`, 1: auto with 2 workers on 2 cores) and, with
`--processes 2`, in two such processes at once (as two TorchServe workers run).

    PYTHONPATH=. python -m bench.probes.forward_chunks [--workloads mobilenet digits langid]
        [--sizes 4 8 16 32 64 128] [--seconds 2] [--threads 1] [--processes 1]

`--chunk N` runs every size as passes of at most N samples (`handler.max_forward_batch`), `--chunk 0`
as one pass; without it, as the archive's spec says. Prints ms per item; nothing is judged.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from typing import Any

from bench.limit import timed
from bench.workloads import ensure_archives, workloads
from handlers.inputs import Request


def per_item_ms(name: str, sizes: list[int], seconds: float, threads: int, chunk: int | None) -> dict[int, float]:
    """ms per item of `core.infer` at each size, one process."""
    import torch

    from stackctl.catalog.inprocess import InProcessModel

    workload = workloads([name])[0]
    model = InProcessModel(workload.archive)
    torch.set_num_threads(threads)
    core = model.handler.core
    if chunk is not None:
        core.chunk = chunk or None
    # The repository's Request: the archive's core reads it by shape (handlers.core.is_instances).
    inputs = [core.decode(Request(p.body, p.content_type)) for p in workload.payloads()]
    out = {}
    for size in sizes:
        batch = [inputs[i % len(inputs)] for i in range(size)]

        def work(batch: list[Any] = batch) -> int:
            core.infer(batch)
            return len(batch)

        rate, _ = timed(work, seconds)
        out[size] = 1000 / rate
    return out


def _worker(args: tuple[str, list[int], float, int, int | None, Any]) -> dict[int, float]:
    name, sizes, seconds, threads, chunk, barrier = args
    barrier.wait()
    return per_item_ms(name, sizes, seconds, threads, chunk)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workloads", nargs="*", default=["mobilenet"])
    parser.add_argument("--sizes", nargs="*", type=int, default=[4, 8, 16, 32, 64, 128])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=None)
    args = parser.parse_args(argv)
    ensure_archives(workloads(args.workloads))
    for name in args.workloads:
        started = time.perf_counter()
        if args.processes == 1:
            results = [per_item_ms(name, args.sizes, args.seconds, args.threads, args.chunk)]
        else:
            context = multiprocessing.get_context("spawn")
            with context.Manager() as manager, context.Pool(args.processes) as pool:
                barrier = manager.Barrier(args.processes)
                results = pool.map(_worker, [(name, args.sizes, args.seconds, args.threads, args.chunk, barrier)]
                                   * args.processes)
        print(f"{name} ({args.processes} process(es) x {args.threads} thread(s), chunk {args.chunk}, "
              f"{time.perf_counter() - started:.0f} s):")
        for size in args.sizes:
            cells = " ".join(f"{r[size]:.3f}" for r in results)
            print(f"  batch {size:4d}: ms/item {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
