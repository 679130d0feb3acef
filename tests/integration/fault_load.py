"""Paced requests with per-request outcomes, for the fault tests (test_faults.py).

The fault tests bound how many requests a fault may fail by how many were in flight at the moment
of the fault, so they need every request's outcome and a live in-flight count: what a test
instrument needs, not what load generation needs (that is loadtest/driver.py, Locust).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Self

import requests

REQUEST_TIMEOUT = 30.0    # = responseTimeout in config/models/*.yaml; tests of the bound pass a longer one


@dataclass(frozen=True)
class Target:
    model: str
    url: str
    bodies: Sequence[tuple[bytes, str]]   # (body, content type), used round-robin
    rate: float                           # requests/s
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    model: str
    started: float      # time.monotonic()
    finished: float
    status: int         # 0: no answer (connection error, timeout)
    detail: str = ""
    answer: str = ""    # the body of a 200 (checked against the answer outside the fault)


class Load:
    """Open-loop paced requests to one or more targets, each at its own constant rate, from a
    bounded thread pool. Every request's outcome is kept; `in_flight(model)` counts the ones sent
    and not yet answered (used to judge how many failures a fault may cause)."""

    def __init__(self, targets: Sequence[Target], max_in_flight: int = 16, timeout: float = REQUEST_TIMEOUT):
        self.targets = list(targets)
        self.timeout = timeout
        self.outcomes: list[Outcome] = []
        self._pending: dict[str, int] = {t.model: 0 for t in targets}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="load")
        self._local = threading.local()
        self._schedulers = [threading.Thread(target=self._pace, args=(t,), daemon=True) for t in targets]
        self.late = 0  # requests that left later than scheduled because every slot was busy

    def start(self) -> Load:
        for thread in self._schedulers:
            thread.start()
        return self

    def stop(self) -> list[Outcome]:
        """Stop sending, wait for the requests in flight, return every outcome."""
        self._stop.set()
        for thread in self._schedulers:
            thread.join()
        self._pool.shutdown(wait=True)
        return self.outcomes

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def in_flight(self, model: str | None = None) -> int:
        with self._lock:
            return sum(self._pending.values()) if model is None else self._pending[model]

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def _pace(self, target: Target) -> None:
        interval = 1.0 / target.rate
        next_at = time.monotonic()
        sent = 0
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            if not self._slots.acquire(timeout=1.0):
                continue  # every slot busy: retry (late), unless stopping
            behind = time.monotonic() - next_at
            if behind > interval:
                self.late += 1
            if behind > 1.0:
                next_at = time.monotonic()  # no catch-up burst after a stall: the backlog is dropped
            with self._lock:
                self._pending[target.model] += 1
            body, content_type = target.bodies[sent % len(target.bodies)]
            self._pool.submit(self._send, target, body, content_type)
            sent += 1
            next_at += interval

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _send(self, target: Target, body: bytes, content_type: str) -> None:
        started = time.monotonic()
        status, detail, answer = 0, "", ""
        try:
            response = self._session().post(target.url, data=body, timeout=self.timeout,
                                            headers={"Content-Type": content_type, **target.headers})
            status = response.status_code
            if status != 200:
                detail = response.text[:200]
            else:
                answer = response.text
        except requests.RequestException as exc:
            detail = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            outcome = Outcome(target.model, started, time.monotonic(), status, detail, answer)
            with self._lock:
                self._pending[target.model] -= 1
                self.outcomes.append(outcome)
            self._slots.release()
