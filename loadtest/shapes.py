"""Load shapes as data tables (the pacing of one open-loop user is in pacing.py).

Closed loop vs open loop (and why it matters for latency numbers)
-----------------------------------------------------------------
Locust users are *closed loop* by default: a user sends its next request only after the previous
answer arrived (plus think time). When the server slows down, every user slows down with it, so
the offered load drops exactly when the server is in trouble, and the requests that *would* have
been sent during a stall are never sent, never timed. The latency percentiles then describe the
lucky requests only. This is "coordinated omission" (Gil Tene); a closed-loop test can report a
fine p99 for a server that is hopelessly overloaded.

An *open-loop* test fixes the arrival rate instead: requests are sent on a schedule that does not
depend on how fast answers come back, as real independent clients do. We approximate it in Locust
with many paced users (`--user-rate R`: each user starts one request every 1/R s on a fixed
schedule, like `constant_throughput`) and `users = target_rps / R`. A user that is still waiting
when its next start is due falls behind; instead of silently skipping that request (closed-loop
behaviour) it sends it at once, and the time it spent behind schedule is added to the recorded
response time, i.e. latency is measured from the *intended* start, as wrk2 does. Overload then
shows up as growing latency instead of as a quietly lower request rate. Size the user count so
that users * (1/R) comfortably exceeds the latency you expect (the shapes below do this for you).

Shapes
------
`STEP_RAMP` (closed loop) adds users in steps and holds each step, a quick "where does it bend"
test. `ARRIVAL_RATE` (open loop) holds a table of target requests/s; it needs `--user-rate > 0`.
Pick one with the environment variable LOADTEST_SHAPE=step|arrival (the Locust master reads it;
workers follow the master). Without it, `--users`/`--spawn-rate`/`--run-time` apply as usual.
Edit the tables or point LOADTEST_STAGES at a JSON file with the same fields to use your own.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadtest.pacing import users_for_rate

SHAPE_ENV = "LOADTEST_SHAPE"
STAGES_ENV = "LOADTEST_STAGES"


@dataclass(frozen=True)
class Stage:
    """Hold for `seconds`: `users` users (step ramp), or `rps` requests/s in total (arrival rate)."""

    seconds: float
    users: int = 0
    rps: float = 0.0
    spawn_rate: float = 10.0


# Closed loop: 5 -> 40 users in steps of 30 s (3.5 minutes).
STEP_RAMP: tuple[Stage, ...] = (
    Stage(30, users=5), Stage(30, users=10), Stage(30, users=15), Stage(30, users=20),
    Stage(30, users=25), Stage(30, users=30), Stage(30, users=40),
)

# Open loop: 10 -> 80 requests/s in total, 30 s per step (3 minutes), split by spec weights.
ARRIVAL_RATE: tuple[Stage, ...] = (
    Stage(30, rps=10), Stage(30, rps=20), Stage(30, rps=30),
    Stage(30, rps=45), Stage(30, rps=60), Stage(30, rps=80),
)


def stage_at(stages: Sequence[Stage], elapsed: float) -> Stage | None:
    """The stage active `elapsed` seconds into the run; None once the table is exhausted."""
    end = 0.0
    for stage in stages:
        end += stage.seconds
        if elapsed < end:
            return stage
    return None


def load_stages(path: str) -> tuple[Stage, ...]:
    rows: list[dict[str, Any]] = json.loads(open(path, encoding="utf-8").read())
    return tuple(Stage(**row) for row in rows)


def step_ramp_tick(stages: Sequence[Stage], elapsed: float) -> tuple[int, float] | None:
    """Closed loop: the `users` column, one stage after another; None ends the run."""
    stage = stage_at(stages, elapsed)
    return None if stage is None else (stage.users, stage.spawn_rate)


def arrival_rate_tick(stages: Sequence[Stage], elapsed: float, user_rate: float) -> tuple[int, float] | None:
    """Open loop: the `rps` column as paced users; a stage's users start at once."""
    stage = stage_at(stages, elapsed)
    if stage is None:
        return None
    users = users_for_rate(stage.rps, user_rate)
    return users, max(stage.spawn_rate, float(users))


SHAPES = ("step", "arrival")


def select_shape(name: str | None = None, stages_path: str | None = None) -> type | None:
    """The Locust shape class named by LOADTEST_SHAPE (None: no shape, plain --users/--run-time).

    Built on demand so that importing this module does not import Locust, whose gevent
    monkey-patching must not leak into other programs (the unit tests import this module).
    """
    name = (name if name is not None else os.environ.get(SHAPE_ENV, "")).strip().lower()
    stages_path = stages_path if stages_path is not None else os.environ.get(STAGES_ENV)
    if not name or name == "none":
        return None
    if name not in SHAPES:
        raise ValueError(f"{SHAPE_ENV}={name!r}: choose one of {', '.join(SHAPES)} or none")
    from locust import LoadTestShape

    table = load_stages(stages_path) if stages_path else (STEP_RAMP if name == "step" else ARRIVAL_RATE)

    class StepRampShape(LoadTestShape):
        """Closed loop: the `users` column of `stages` (STEP_RAMP unless LOADTEST_STAGES is set)."""

        stages = table
        open_loop = False

        def tick(self) -> tuple[int, float] | None:
            return step_ramp_tick(self.stages, self.get_run_time())

    class ArrivalRateShape(LoadTestShape):
        """Open loop: the `rps` column of `stages` (ARRIVAL_RATE unless LOADTEST_STAGES is set)."""

        stages = table
        open_loop = True

        def tick(self) -> tuple[int, float] | None:
            options = self.runner.environment.parsed_options if self.runner else None
            return arrival_rate_tick(self.stages, self.get_run_time(), float(getattr(options, "user_rate", 0) or 0))

    return StepRampShape if name == "step" else ArrivalRateShape
