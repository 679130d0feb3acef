"""Photos/s per process of the image handler's decode paths for mobilenet's photos: Pillow on the
CPU (then copied to the GPU) and nvJPEG (`gpu_decode`), one process alone and two at once, since
two TorchServe workers share one GPU. Every item ends with a sync, as a served batch does."""
import json
import multiprocessing as mp
import time


def work(kind: str, seconds: float, start, out) -> None:
    import torch

    from bench.workloads import MOBILENET_SPEC, photo_payloads
    from handlers.image import decode_image_pixels
    from handlers.sections import override
    from stackctl.catalog.specs import load_spec

    torch.set_num_threads(1)
    settings = override(load_spec(MOBILENET_SPEC).handler.image, gpu_decode=True)
    photos = [p.body for p in photo_payloads()]
    gpu = torch.device("cuda", 0)

    def one(i: int) -> None:
        if kind == "pillow":
            decode_image_pixels(photos[i % len(photos)], "image/jpeg", settings).to(gpu)
        else:
            decode_image_pixels(photos[i % len(photos)], "image/jpeg", settings, gpu)
        torch.cuda.synchronize()

    for i in range(20):
        one(i)
    start.wait()
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        one(n)
        n += 1
    out.put(n / (time.perf_counter() - started))


def main() -> None:
    ctx = mp.get_context("spawn")
    results = {}
    for kind in ("pillow", "nvjpeg"):
        for procs in (1, 2):
            start, out = ctx.Barrier(procs), ctx.Queue()
            processes = [ctx.Process(target=work, args=(kind, 3.0, start, out)) for _ in range(procs)]
            for p in processes:
                p.start()
            rates = [out.get(timeout=120) for _ in processes]
            for p in processes:
                p.join()
            results[f"{kind} x{procs}"] = [round(r, 1) for r in rates]
            print(kind, procs, "processes: items/s per process", results[f"{kind} x{procs}"], flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
