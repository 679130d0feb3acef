"""What a chaos run is asked to do (Plan) and what each of its faults became (Stage): plain data,
importable without the load driver (Locust monkey-patches sockets when it is imported)."""
from __future__ import annotations

from dataclasses import dataclass, field

from loadtest.chaos.faults import Fault
from loadtest.chaos.recovery import Recovery

SCENARIOS = ("kill-once", "kill-loop", "stop-continue", "prometheus", "log-disk-full")
# Against the compose stack (--against-compose): the workers' faults through `docker exec`, and the
# TorchServe container itself (loadtest/chaos/compose.py).
COMPOSE_SCENARIOS = ("kill-once", "kill-loop", "stop-continue", "worker-oom", "jvm-crash", "container-kill",
                     "prometheus")


@dataclass
class Plan:
    model: str                       # the faulted model
    rates: dict[str, float]          # req/s per model
    bounds: dict[str, int]           # the front door's bound per model (s)
    scenarios: tuple[str, ...] = SCENARIOS
    settle_s: float = 8.0            # quiet load before and after each fault
    loop_s: float = 20.0             # the kill loop's length
    loop_period_s: float = 1.0
    stop_s: float = 35.0             # SIGSTOP length: longer than responseTimeout
    recover_limit_s: float = 120.0   # what a worker's start-up is allowed (the spec's startupTimeout default)


@dataclass
class Stage:
    fault: Fault
    window: tuple[float, float]      # time.time(): this scenario's requests were sent within it
    recovery: Recovery = field(default_factory=Recovery)
