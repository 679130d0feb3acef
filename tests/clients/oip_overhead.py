"""What a request costs over each path, sequential single-instance calls against a running stack:
/predictions, OIP REST (tritonclient.http, binary) and OIP gRPC (tritonclient.grpc, through the
gateway). Prints the median and mean ms per request of each, and gRPC minus REST.

    .venv/bin/python tests/clients/oip_overhead.py http://127.0.0.1:8080 127.0.0.1:7070 [--calls 300]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient


def timed(call: Callable[[], object], calls: int) -> list[float]:
    for _ in range(20):   # warm connections and caches
        call()
    spent = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        spent.append((time.perf_counter() - started) * 1000)
    return spent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("grpc_address")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--model", default="langid")
    args = parser.parse_args()
    text = b"guten Morgen, wie geht es dir?"
    session = requests.Session()
    rest = httpclient.InferenceServerClient(args.url.split("://", 1)[1])
    grpc = grpcclient.InferenceServerClient(args.grpc_address)

    def rest_call() -> object:
        tensor = httpclient.InferInput("text", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([text], dtype=np.object_))
        return rest.infer(args.model, [tensor])

    def grpc_call() -> object:
        tensor = grpcclient.InferInput("text", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([text], dtype=np.object_))
        return grpc.infer(args.model, [tensor])

    def predictions_call() -> object:
        return session.post(f"{args.url}/predictions/{args.model}", json={"text": text.decode()}, timeout=60).json()

    results = {}
    for name, call in (("predictions", predictions_call), ("oip_rest", rest_call), ("oip_grpc", grpc_call)):
        spent = timed(call, args.calls)
        results[name] = {"median_ms": round(statistics.median(spent), 3), "mean_ms": round(statistics.fmean(spent), 3)}
    results["grpc_minus_rest_ms"] = {k: round(results["oip_grpc"][k] - results["oip_rest"][k], 3)
                                     for k in ("median_ms", "mean_ms")}
    print(json.dumps({"model": args.model, "calls": args.calls, **results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
