"""The one load driver: Locust runners in this process, a step at a time, with timing windows.

`make capacity` (capacity.py), `make bench` (bench/loadgen.py) and `make soak` (soak.py) all load
the server through this module; each keeps only its own job (search, benchmark, soak).

* users: one Locust user class per model spec (users.make_user_class, payloads from payloads.py);
* closed loop (`closed`): N users, each sending its next request as soon as its answer is back
  (no think time): throughput at a fixed concurrency, i.e. at saturation when N is large;
* open loop (`open`): paced users that together start R requests/s per model on a fixed schedule
  (pacing.Pacer: latency counted from the scheduled start, no coordinated omission);
* windows (`measure`): Locust's statistics reset at the start of a window and read at its end,
  so a warm-up before it is never counted; 5xx answers counted separately from other failures.
  Each model's window is a measurement.Measurement, the record every tool stores.

Import this module before anything opens a socket: Locust monkey-patches sockets for gevent.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol, Self

import gevent
import locust  # noqa: F401  (first: gevent monkey-patching)
from locust.env import Environment

from loadtest.measurement import Measurement, from_locust
from loadtest.pacing import per_user_rate, users_for_rate
from loadtest.users import ModelUser


class _QuietSpawnRate(logging.Filter):
    """Drops Locust's "spawn rate is very high" warning: a step starts its users at once on
    purpose (paced users then start at random phases), and the warning would repeat every step."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "spawn rate is very high" not in record.getMessage()


logging.getLogger("locust.runners").addFilter(_QuietSpawnRate())


class Probe(Protocol):
    """Something measured over the same window as the load (CPU, the server's batch sizes)."""

    def start(self) -> None: ...

    def stop(self) -> Any: ...


class Driver:
    """One Locust environment; `closed`/`open` set the load, `measure` times a window of it."""

    def __init__(self, user_classes: Sequence[type[ModelUser]], host: str):
        self.classes = {cls.spec.name: cls for cls in user_classes}
        self.env = Environment(user_classes=list(user_classes), host=host)
        self.runner = self.env.create_local_runner()
        self.status_5xx: dict[str, int] = {}
        self.load: dict[str, tuple[str, int, float | None]] = {}  # model: (mode, users, offered req/s)
        self.started = time.monotonic()
        self.env.events.request.add_listener(self._count_5xx)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.runner.quit()

    def _count_5xx(self, name: str = "", response: Any = None, **_kwargs: Any) -> None:
        if (getattr(response, "status_code", 0) or 0) >= 500:
            self.status_5xx[name] = self.status_5xx.get(name, 0) + 1

    def _run(self, users: dict[str, int]) -> None:
        total = sum(users.values())
        if len(self.classes) > 1:
            # Exact counts per model (Locust's `fixed_count`), not a split by weights. Locust's
            # dispatcher reads fixed counts once, at the first start, so such a driver starts once.
            if self.runner.user_count:
                raise RuntimeError("a driver with several models sets its load once (Locust's fixed_count)")
            for name, cls in self.classes.items():
                cls.fixed_count = users.get(name, 0)
        self.runner.start(total, spawn_rate=max(1, total))  # all at once; paced users start at random phases

    def closed(self, users: int, model: str | None = None) -> None:
        """`users` users of one model (default: the only one), no think time."""
        name = model or next(iter(self.classes))
        cls = self.classes[name]
        cls.user_rate, cls.think_time = 0.0, 0.0
        self._run({name: users})
        self.load = {name: ("closed", users, None)}

    def open(self, rates: dict[str, float], max_users: int | None = None) -> dict[str, int]:
        """Start `rates[model]` requests/s per model on a fixed schedule; returns users per model.
        Users per model: enough that one whose answers meet the p99 SLO never falls behind
        (pacing.per_user_rate), at most `max_users` (each user has one request outstanding)."""
        users = {}
        for name, rate in rates.items():
            cls = self.classes[name]
            users[name] = min(users_for_rate(rate, per_user_rate(cls.spec.slo.p99_ms)), max_users or 1 << 30)
            cls.user_rate = rate / users[name]  # n users together offer exactly `rate`
        self._run(users)
        self.load = {name: ("open", users[name], rate) for name, rate in rates.items()}
        return users

    def reset(self) -> None:
        self.env.stats.reset_all()
        self.status_5xx.clear()
        self.started = time.monotonic()

    def snapshot(self) -> dict[str, Measurement]:
        """Every model's measurement since the last reset (or since the driver was made)."""
        elapsed = max(1e-9, time.monotonic() - self.started)
        windows = {}
        for name in self.classes:
            failure = next((e for e in self.env.stats.errors.values() if e.name == name), None)
            mode, users, offered = self.load.get(name, ("closed", 0, None))
            # By name whatever the method: HTTP users report "POST", the gRPC user "grpc".
            entry = next((e for (n, _m), e in self.env.stats.entries.items() if n == name), None) \
                or self.env.stats.get(name, "POST")
            windows[name] = from_locust(name, entry, seconds=elapsed, mode=mode,
                                        users=users, offered_rps=offered, status_5xx=self.status_5xx.get(name, 0),
                                        first_failure=f"{failure.occurrences}x {failure.error}" if failure else None)
        return windows

    def measure(self, seconds: float, probe: Probe | None = None) -> tuple[dict[str, Measurement], Any]:
        """Reset the statistics, hold the current load for `seconds`, read them; with `probe`'s
        reading over the same window."""
        self.reset()
        if probe is not None:
            probe.start()
        gevent.sleep(seconds)
        reading = probe.stop() if probe is not None else None
        return self.snapshot(), reading

    def closed_step(self, users: int, warmup: float, window: float, probe: Probe | None = None) -> tuple[Measurement, Any]:
        self.closed(users)
        gevent.sleep(warmup)
        windows, reading = self.measure(window, probe)
        return next(iter(windows.values())), reading

    def open_step(self, rps: float, warmup: float, window: float, probe: Probe | None = None,
                  max_users: int | None = None) -> tuple[Measurement, Any]:
        """One model at `rps`: its measurement (with the paced users it took), and the probe's reading.

        The users of a previous step are stopped first: each step starts fresh schedules and owes
        no answer to an earlier (perhaps overloaded) step; the warm-up lets the server drain."""
        name = next(iter(self.classes))
        if self.runner.user_count:
            self.runner.stop()
        self.open({name: rps}, max_users)
        gevent.sleep(warmup)
        windows, reading = self.measure(window, probe)
        return windows[name], reading
