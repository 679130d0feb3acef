"""The bench's load steps: the load driver (loadtest/driver.py) with CPU use measured per step.

* `closed_step`: N users, each sending its next request as soon as its answer is back (no think
  time): the saturation sweep and the batching comparison, at a fixed concurrency.
* `open_step`: paced users that together start R requests/s on a fixed schedule, latency counted
  from the scheduled start: latency under moderate load without coordinated omission.

Every step (steps.py) is the driver's measurement with the cores used by this process (the load
generator), by the server's process tree and by the whole machine over the measured window
(psutil), and flags when the client, not the server, was the limit: a gevent load generator is
one thread, so ~1 core is its ceiling.
Import this module before anything opens a socket: Locust monkey-patches sockets for gevent.
"""
from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Any, Self

import psutil

from bench.steps import CpuUse, Step, bottleneck_flags
from loadtest.driver import Driver
from loadtest.measurement import Measurement
from loadtest.payloads import Payload
from loadtest.users import make_user_class
from stackctl.catalog.specs import ModelSpec


@dataclass(frozen=True)
class Target:
    """Where load goes: a server's URL and model path, and how to find its processes."""

    label: str                    # e.g. "torchserve", "torchserve batchSize=1", "fastapi peer"
    url: str
    model_path: str               # /predictions/<name> (a variant's name; answers name the spec's model),
                                  # or /v2/models/<name>/infer (OIP)
    server_pid: int | None = None


class CpuMeter:
    """Cores used between `start()` and `stop()` by this process, a server tree and the machine."""

    def __init__(self, server_pid: int | None):
        self.me = psutil.Process()
        self.server = psutil.Process(server_pid) if server_pid else None

    def _server_seconds(self) -> dict[int, float]:
        if self.server is None:
            return {}
        seconds = {}
        for proc in [self.server, *self.server.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                seconds[proc.pid] = t.user + t.system
            except psutil.Error:
                pass
        return seconds

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.me0 = sum(self.me.cpu_times()[:2])
        self.server0 = self._server_seconds()
        self.machine0 = psutil.cpu_times()

    def stop(self) -> CpuUse:
        elapsed = time.monotonic() - self.t0
        client = (sum(self.me.cpu_times()[:2]) - self.me0) / elapsed
        server = None
        if self.server is not None:
            now = self._server_seconds()
            server = sum(now[p] - self.server0.get(p, 0.0) for p in now) / elapsed
        m0, m1 = self.machine0, psutil.cpu_times()
        busy = sum(getattr(m1, f) - getattr(m0, f) for f in ("user", "system", "nice", "irq", "softirq", "steal"))
        steal = (m1.steal - m0.steal) / elapsed if hasattr(m1, "steal") else 0.0
        return CpuUse(round(client, 3), None if server is None else round(server, 3), round(busy / elapsed, 3),
                      round(steal, 3))


class Load:
    """One driver against one target; steps run one after another."""

    def __init__(self, target: Target, spec: ModelSpec, bodies: list[Payload], protocol: str = "predictions"):
        self.target = target
        # `instances`: every body of one load carries as many (oip_rows.py builds them so).
        user = make_user_class(spec, route=target.model_path, bodies=bodies, protocol=protocol,
                               instances=bodies[0].instances if bodies else 1)
        self.driver = Driver([user], target.url)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.driver.runner.quit()

    def closed_step(self, users: int, warmup: float, window: float) -> Step:
        return self._step(*self.driver.closed_step(users, warmup, window, CpuMeter(self.target.server_pid)))

    def open_step(self, rps: float, warmup: float, window: float) -> Step:
        return self._step(*self.driver.open_step(rps, warmup, window, CpuMeter(self.target.server_pid)))

    def _step(self, measured: Measurement, cpu: CpuUse) -> Step:
        return Step(self.target.label, measured, cpu, tuple(bottleneck_flags(cpu, psutil.cpu_count() or 1)))


def exit_on_sigterm() -> None:
    """SIGTERM ends the run like Ctrl-C, so the servers' `finally:` blocks stop them (no orphans)."""
    def terminate(_signum: int, _frame: Any) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, terminate)


def sweep(load: Load, levels: list[int], warmup: float, window: float,
          p95_limit_ms: float | None = None, deadline: float | None = None, log=print, min_users: int = 0) -> list[Step]:
    """Closed-loop concurrency sweep until throughput stops rising, failures, a p95 limit or the deadline;
    a flat throughput ends it only from `min_users` users on (oip_rows.py: enough requests to fill
    every worker's batch)."""
    steps: list[Step] = []
    for users in levels:
        if deadline is not None and steps and time.monotonic() + warmup + window > deadline:
            break
        step = load.closed_step(users, warmup, window)
        steps.append(step)
        m, cpu = step.measured, step.cpu
        log(f"    {step.target:28s} {users:3d} users: {m.rps:8.1f} req/s  p50/p95/p99 "
            f"{m.p50_ms}/{m.p95_ms}/{m.p99_ms} ms  fail {m.failures}  client {cpu.client_cores:.2f} "
            f"server {cpu.server_cores} machine {cpu.machine_busy_cores:.2f} cores")
        if m.failures:
            break
        if p95_limit_ms is not None and (m.p95_ms or 0) > p95_limit_ms:
            break
        best = max(s.measured.rps for s in steps)
        if users >= min_users and len(steps) >= 3 and all(s.measured.rps < 1.05 * best for s in steps[-2:]) and steps[-3].measured.rps == best:
            break  # two steps past the peak without 5% more
    return steps


def saturation(steps: list[Step], p95_limit_ms: float | None = None) -> Step | None:
    """The step with the most throughput among those without failures (and within a p95 limit)."""
    ok = [s for s in steps if s.measured.failures == 0 and s.measured.requests > 0
          and (p95_limit_ms is None or (s.measured.p95_ms or 0) <= p95_limit_ms)]
    return max(ok, key=lambda s: s.measured.rps) if ok else None
