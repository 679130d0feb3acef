"""`make bench`'s Open Inference Protocol rows: TorchServe answering OIP requests of 1, 8 and 32
instances, in items/s against the true limit (issue 25).

Per instance count, a closed-loop sweep of POST /v2/models/<m>/infer with the binary tensor data
extension (loadtest/oip_bodies.py: tritonclient's own serialisation of the workload's bodies, built
before any clock starts) straight to TorchServe, as every bench row is, so each request carries
the `X-Inference-Protocol: v2` header the front door would set. Requests count as Locust counts
them; items/s is the saturating step's requests/s x instances (each answer is checked to hold that
many rows). A sweep stops at MAX_ITEMS_IN_FLIGHT items outstanding (32 users of 32 instances).
It must reach past batchSize requests: TorchServe batches requests, not items, so while at most
batchSize requests are out (8 users of 32 instances against digits' batchSize 8) they tend to
land in one worker's batch together and the other worker idles (measured: 0.6 server cores of 2,
and a throughput flat from 1 to 4 users), so a flat throughput ends a sweep only from workers x
batchSize users on.

Where the time goes: with the server's metrics URL, each instance count also gets one 1-user step
with TorchServe's counters read around it (floor.breakdown: frontend total, queue wait, handler,
the rest), so the handler's ms per request of N items can be set against the in-process limit's
ms per item. These run before any OIP sweep, each once the server's queue is empty (`drain`):
requests a stopped sweep left queued (128 users of 8 mobilenet photos) had made a later
32-instance request's mean queue wait 0.3-6 s.
"""
from __future__ import annotations

import time
from typing import Any

from bench import floor, loadgen
from bench.steps import Step
from loadtest.oip_bodies import infer_path, oip_payloads
from loadtest.payloads import Payload, kind_of
from stackctl.catalog.specs import ModelSpec

INSTANCES = (1, 8, 32)
MAX_ITEMS_IN_FLIGHT = 1024


def levels_for(levels: list[int], instances: int) -> list[int]:
    """The sweep's user counts that keep at most MAX_ITEMS_IN_FLIGHT items outstanding (at least one)."""
    return [u for u in levels if u * instances <= MAX_ITEMS_IN_FLIGHT] or levels[:1]


def drain(metrics_url: str, model: str, timeout: float = 60.0, interval: float = 0.5, still: int = 4) -> None:
    """Return once TorchServe has answered every request it held for `model`: its summed latency
    (added as each answer leaves) has not moved for `still` polls `interval` apart, longer than
    one batch of 32-instance requests takes; or after `timeout`. A stopped load's users leave
    their last requests queued in the server, and they would be counted in the next step's means."""
    deadline = time.monotonic() + timeout
    last, unchanged = floor.counters(metrics_url, model)["frontend_us"], 0
    while unchanged < still and time.monotonic() < deadline:
        time.sleep(interval)  # gevent's, under Locust's monkey-patching
        now = floor.counters(metrics_url, model)["frontend_us"]
        unchanged = unchanged + 1 if now == last else 0
        last = now


def row(instances: int, steps: list[Step], breakdown: dict[str, Any] | None = None) -> dict[str, Any]:
    """One instance count's results: its sweep, the saturating step and the items/s there, and
    the 1-user breakdown when measured."""
    best = loadgen.saturation(steps)
    out = {"instances": instances, "sweep": [s.to_json() for s in steps],
           "saturation": best.to_json() if best else None,
           "items_per_s": round(best.measured.rps * instances, 1) if best else None}
    return {**out, "breakdown": breakdown} if breakdown is not None else out


def step_window(window: float, instances: int, breakdown: dict[str, Any] | None) -> float:
    """A sweep step's window for requests of `instances`: long enough that a step completes requests.
    One request of 32 photos to resnet18 takes 0.4 s at 1 user on these cores and seconds once a few
    users queue, more than the quick bench's 1 s window, which then measured no request at all: at
    least 5 single-user latencies (the breakdown's p50), else the window scaled by instances / 8."""
    p50_ms = (breakdown or {}).get("client p50 ms")
    if p50_ms:
        return max(window, 5 * float(p50_ms) / 1000)
    return window * max(1.0, instances / 8)


def measure(spec: ModelSpec, model: str, url: str, pid: int | None, singles: list[Payload], levels: list[int],
            warmup: float, window: float, metrics_url: str | None = None, fill_users: int = 0,
            log=print) -> dict[str, Any]:
    """{"1": row, "8": row, "32": row} against the server at `url` serving `model` (spec `spec`);
    `fill_users`: the server's workers x batchSize (a sweep goes at least that far). The 1-user
    breakdowns run first, before any sweep has queued hundreds of items in the server."""
    bodies = {n: oip_payloads(kind_of(spec), singles, n) for n in INSTANCES}

    def load(n: int) -> loadgen.Load:
        return loadgen.Load(loadgen.Target(f"torchserve OIP x{n}", url, infer_path(model), pid), spec, bodies[n],
                            protocol="oip")

    splits: dict[int, dict[str, Any] | None] = dict.fromkeys(INSTANCES)
    for n in INSTANCES if metrics_url else ():
        with load(n) as one_user:
            drain(metrics_url, model)  # type: ignore[arg-type]
            one_user.closed_step(1, warmup, 0.0)
            before = floor.counters(metrics_url, model)  # type: ignore[arg-type]
            one = one_user.closed_step(1, 0.0, window)
            splits[n] = floor.breakdown(before, floor.counters(metrics_url, model),  # type: ignore[arg-type]
                                        one.measured.p50_ms)
        log(f"    OIP {n} instances/request at 1 user: {splits[n]}")
    out = {}
    for n in INSTANCES:
        with load(n) as swept:
            steps = loadgen.sweep(swept, levels_for(levels, n), warmup, step_window(window, n, splits[n]), log=log,
                                  min_users=fill_users)
        out[str(n)] = row(n, steps, splits[n])
        log(f"    OIP {n} instances/request: {out[str(n)]['items_per_s']} items/s at saturation")
    return out
