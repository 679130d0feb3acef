"""On CUDA: what the image handler's GPU options buy, in-process (bench/NOTES.md row 10).

    python -m bench.cuda_options [--seconds 0.5] [--out build/bench/cuda_options.json]

`make bench` serves every workload with its spec's settings; this answers the two questions the
spec leaves to the operator on a GPU host, for the compute-bound `mobilenet` workload:
  * precision: the archive's handler at fp32, bf16 and fp16 autocast (`handler.precision`), the
    limit's batch sweep (`limit.measure`) for each, and how often the top-1 answer matches fp32's;
  * decode: the handler's CPU decode (Pillow, reduced-size JPEG, resize + crop in uint8) per item
    against nvJPEG (`torchvision.io.decode_jpeg(device="cuda")`) on a batch with the resize and
    crop on the GPU: whether moving the decode would pay.
Exits with a message on a host without CUDA (autocast and nvJPEG apply to CUDA only).
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

import torch

from bench import limit, report, servers
from bench.workloads import ensure_bench_archive, photo_payloads, run_folder, tidy_run_folder, workloads
from handlers.sections import override
from stackctl import paths

PRECISIONS = ("fp32", "bf16", "fp16")
DECODE_BATCHES = (1, 8, 32, 64)


def precision_sweep(seconds: float, store: Path) -> dict[str, Any]:
    from stackctl.catalog.inprocess import InProcessModel, Request

    w = workloads(["mobilenet"])[0]
    base = ensure_bench_archive(w.spec)
    bodies = [(p.body, p.content_type) for p in photo_payloads()]
    out: dict[str, Any] = {}
    reference: list[str] | None = None
    for precision in PRECISIONS:
        archive = servers.variant(w.spec, base, store, f"mobilenet-{precision}", handler=override(w.spec.handler, precision=precision))
        result = limit.measure(archive, bodies, seconds, configs=((1, 1),))
        model = InProcessModel(archive, gpu_id=0)
        answers = model.predict([Request(body, kind) for body, kind in bodies])
        top1 = [answer["top_k"][0]["label"] for _, answer in answers]
        reference = reference or top1
        out[precision] = {"items_per_s": result["items_per_s"], "best_batch_size": result["best_batch_size"],
                          "forward_items_per_s_at_best_batch": result["forward_items_per_s_at_best_batch"],
                          "top1_matches_fp32": round(sum(a == b for a, b in zip(top1, reference)) / len(top1), 3)}
        print(f"precision {precision}: {out[precision]}", flush=True)
    return out


def decode_comparison(seconds: float) -> dict[str, Any]:
    from torchvision.io import decode_jpeg
    from torchvision.transforms.v2 import functional as F

    from handlers.image import decode_image_pixels

    spec = workloads(["mobilenet"])[0].spec
    settings = spec.handler.image
    photos = [p.body for p in photo_payloads()]
    encoded = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in photos]

    def cpu_path() -> int:
        for body in photos:
            decode_image_pixels(body, "image/jpeg", settings)
        return len(photos)

    def gpu_path(size: int) -> int:
        for start in range(0, len(encoded), size):
            images = decode_jpeg(encoded[start:start + size], device="cuda")
            torch.stack([F.center_crop(F.resize(i, [settings.resize], antialias=True), [settings.center_crop])
                         for i in images])
        torch.cuda.synchronize()  # the work above is queued on the GPU: count it done
        return len(encoded)

    cpu_rate, _ = limit.timed(cpu_path, seconds)
    out: dict[str, Any] = {"cpu_pillow_items_per_s_1_thread": round(cpu_rate, 1), "nvjpeg_items_per_s": {}}
    for size in DECODE_BATCHES:
        rate, _ = limit.timed(functools.partial(gpu_path, size), seconds)
        out["nvjpeg_items_per_s"][str(size)] = round(rate, 1)
    print(f"decode: {out}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="per batch size")
    parser.add_argument("--out", type=Path, default=paths.BUILD / "bench" / "cuda_options.json")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench.cuda_options: no CUDA device here; precision and nvJPEG decode apply to CUDA only")
        return 0
    torch.set_num_threads(1)  # the decode comparison: one worker's thread, as served
    work = run_folder("cuda-options")
    (work / "model_store").mkdir()
    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "precision": precision_sweep(args.seconds, work / "model_store"),
              "decode": decode_comparison(args.seconds)}
    tidy_run_folder(work)
    print(f"written {report.write_json(args.out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
