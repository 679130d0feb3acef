"""langid per handler call on CUDA (cuDNN GRU, then ATen's own CUDA GRU) and with ONNX Runtime on
one CPU thread, over the same seeded batches (sizes 1-32, mostly small, as at half load).

Each pass prints p50/p90/p99/max per call; the first pass meets each (batch, lengths) shape for
the first time, the second repeats them, so a per-shape first-call cost shows as the difference.
Its numbers in NOTES were measured before `pad_batches` (NOTES row 37): on CUDA a call now runs at
the next power of two of its batch size.
"""
import json
import random
import statistics
import sys
import time

import torch

from bench.workloads import workloads
from stackctl.catalog.inprocess import InProcessModel, Request

BATCH_SIZES = [1, 1, 1, 2, 2, 3, 4, 6, 8, 12, 16, 24, 32]


def batches(count: int) -> list[list[Request]]:
    bodies = [(p.body, p.content_type) for p in workloads(["langid"])[0].payloads()]
    rng = random.Random(0)
    return [[Request(*rng.choice(bodies)) for _ in range(rng.choice(BATCH_SIZES))] for _ in range(count)]


def timed_pass(model: InProcessModel, label: str, work: list[list[Request]], context=None) -> None:
    times = []
    for batch in work:
        started = time.perf_counter()
        if context:
            with context():
                model.predict(batch)
        else:
            model.predict(batch)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1000)
    q = statistics.quantiles(times, n=100)
    print(label, json.dumps({"p50": round(q[49], 2), "p90": round(q[89], 2), "p99": round(q[98], 2),
                             "max": round(max(times), 1), "mean": round(statistics.mean(times), 2),
                             "over_20ms": sum(t > 20 for t in times)}), flush=True)


def main() -> None:
    work = batches(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
    archive = workloads(["langid"])[0].archive
    gpu = InProcessModel(archive, gpu_id=0)
    gpu.handler.core.warm_up(list(range(1, 33)))  # as a served worker with batchSize 32 does
    print("gpu session", gpu.handler.core.task.session, "device", gpu.handler.core.device)
    timed_pass(gpu, "cuda cudnn  run1", work)
    timed_pass(gpu, "cuda cudnn  run2", work)
    timed_pass(gpu, "cuda native run1", work, lambda: torch.backends.cudnn.flags(enabled=False))
    torch.set_num_threads(1)
    cpu = InProcessModel(archive, gpu_id=None)
    print("cpu session", type(cpu.handler.core.task.session).__name__)
    timed_pass(cpu, "cpu ort 1thr run1", work)
    timed_pass(cpu, "cpu ort 1thr run2", work)


if __name__ == "__main__":
    main()
