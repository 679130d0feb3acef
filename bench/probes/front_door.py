"""What the front door (nginx, stackctl/serve/front_door.py) costs per request, on this host's CPU.

One native stack; sequential requests on kept-alive connections, straight to TorchServe's own
inference port and through the front door, interleaved in pairs (alternating which goes first)
so that drift hits both alike. Latency percentiles per path, and the CPU nginx spent per request
through it (its processes' CPU time over the run: the direct requests never touch it), beside the
CPU TorchServe (JVM and workers) spent per request.

    PYTHONPATH=. python -m bench.probes.front_door [pairs]   # default 1000
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import requests

from stackctl import paths
from stackctl.serve.native import NativeStack, Ports


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def measure(stack: NativeStack, torchserve_pid: int, name: str, method: str, path: str, body: bytes | None,
            headers: dict[str, str], pairs: int) -> dict:
    urls = {"direct": f"http://127.0.0.1:{stack.torchserve_inference_port}", "front door": stack.inference_url}
    sessions = {key: requests.Session() for key in urls}
    for key in urls:  # connections open, JIT and caches warm
        for _ in range(100):
            sessions[key].request(method, urls[key] + path, data=body, headers=headers, timeout=30).raise_for_status()
    nginx, server = tree(stack.pid("front-door") or 0), tree(torchserve_pid)
    nginx_before, server_before = cpu_seconds(nginx), cpu_seconds(server)
    latency: dict[str, list[float]] = {key: [] for key in urls}
    for i in range(pairs):
        for key in (("direct", "front door") if i % 2 else ("front door", "direct")):
            started = time.perf_counter()
            answer = sessions[key].request(method, urls[key] + path, data=body, headers=headers, timeout=30)
            latency[key].append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
    nginx_cpu, server_cpu = cpu_seconds(nginx) - nginx_before, cpu_seconds(server) - server_before
    result = {key: {f"p{q}": round(percentile(values, q / 100), 3) for q in (50, 90, 99)} for key, values in latency.items()}
    return {"request": name, "pairs": pairs, "ms": result,
            "p50 added ms": round(result["front door"]["p50"] - result["direct"]["p50"], 3),
            "nginx core-ms per request": round(nginx_cpu * 1000 / pairs, 3),
            "torchserve core-ms per request": round(server_cpu * 1000 / (2 * pairs), 3)}


def main() -> None:
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    stack = NativeStack(run_dir=Path(tempfile.mkdtemp(prefix="front-door-probe-")), ports=Ports.free())
    proc = stack.start_torchserve()
    try:
        stack.wait_for_torchserve(proc, timeout=240)
        png = (paths.ROOT / "tests" / "data" / "digit-7.png").read_bytes()
        cases: list[tuple[str, str, str, bytes | None, dict[str, str]]] = [
            ("GET /ping", "GET", "/ping", None, {}),
            ("POST /predictions/digits (PNG)", "POST", "/predictions/digits", png, {"Content-Type": "image/png"})]
        for name, method, path, body, headers in cases:
            print(json.dumps(measure(stack, proc.pid, name, method, path, body, headers, pairs)), flush=True)
    finally:
        stack.stop_all()


if __name__ == "__main__":
    main()
