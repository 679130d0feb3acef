"""The faults, each on one model's TorchServe workers (found through the management API, which
lists every worker's pid and status, a starting one included) or on Prometheus.

Each returns a Fault: when it began and ended (time.time()) and what it hit, for the report.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests


@dataclass
class Fault:
    scenario: str
    model: str
    began: float
    ended: float = 0.0
    hits: list[str] = field(default_factory=list)   # "<pid> <status at the hit>"

    def describe(self) -> str:
        starting = sum(not hit.endswith("READY") for hit in self.hits)
        return f"{len(self.hits)} hit(s), {starting} on a worker not READY (starting)" if self.hits else "no hit"


def workers(management_url: str, model: str) -> dict[int, str]:
    """pid -> status of `model`'s worker processes (a worker between processes has none)."""
    try:
        described = requests.get(f"{management_url}/models/{model}", timeout=5).json()
    except (requests.RequestException, ValueError):
        return {}
    return {int(w["pid"]): str(w["status"]) for w in described[0].get("workers", [])
            if w.get("pid") not in (None, -1, 0)}


def _signal(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def kill_workers(management_url: str, model: str, fault: Fault) -> None:
    """SIGKILL every worker process of `model` listed now, whatever its state."""
    for pid, status in workers(management_url, model).items():
        if _signal(pid, signal.SIGKILL):
            fault.hits.append(f"{pid} {status}")


def kill_once(management_url: str, model: str) -> Fault:
    fault = Fault("kill once", model, time.time())
    kill_workers(management_url, model, fault)
    fault.ended = time.time()
    return fault


def kill_loop(management_url: str, model: str, seconds: float, period: float) -> Fault:
    """SIGKILL every worker of `model` every `period` s for `seconds`: after the first round the
    kills land on the replacements while they start (their status is not READY yet)."""
    fault = Fault(f"kill loop ({period:g} s, {seconds:g} s)", model, time.time())
    while time.time() - fault.began < seconds:
        kill_workers(management_url, model, fault)
        time.sleep(period)
    fault.ended = time.time()
    return fault


def stop_continue(management_url: str, model: str, seconds: float) -> Fault:
    """SIGSTOP one READY worker of `model` (a hang, not a crash) for `seconds`, then SIGCONT."""
    fault = Fault(f"SIGSTOP {seconds:g} s", model, time.time())
    ready = sorted(pid for pid, status in workers(management_url, model).items() if status == "READY")
    if ready and _signal(ready[0], signal.SIGSTOP):
        fault.hits.append(f"{ready[0]} READY")
        time.sleep(seconds)
        _signal(ready[0], signal.SIGCONT)
    fault.ended = time.time()
    return fault


def kill_and_restart(name: str, pid: int | None, restart: Callable[[], None], down_s: float) -> Fault:
    """SIGKILL a process of the stack (Prometheus), then start it again after `down_s`."""
    fault = Fault(f"{name} killed", "", time.time())
    if pid is not None and _signal(pid, signal.SIGKILL):
        fault.hits.append(f"{pid} {name}")
    time.sleep(down_s)
    restart()
    fault.ended = time.time()
    return fault
