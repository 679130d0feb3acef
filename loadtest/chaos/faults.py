"""The faults, each on one model's TorchServe workers or on Prometheus.

A model's worker processes are found from the management API's worker ids (TorchServe names each
worker's unix socket `.ts.sock.<id>`) among the server's descendants: the API's pid is -1 while a
worker starts, and the kills "during start-up" need exactly those.

Each returns a Fault: when it began and ended (time.time()) and what it hit, for the report.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
import requests


@dataclass
class Fault:
    scenario: str
    model: str
    began: float
    ended: float = 0.0
    hits: list[str] = field(default_factory=list)   # "<pid> <status at the hit>"
    whole_server: bool = False   # every model's requests are in the fault (the TorchServe container)

    def describe(self) -> str:
        if not self.model:
            return f"{len(self.hits)} hit(s)"
        starting = sum(not hit.endswith("READY") for hit in self.hits)
        return f"{len(self.hits)} hit(s), {starting} on a worker not READY (starting)" if self.hits else "no hit"


def workers(management_url: str, model: str) -> dict[int, str]:
    """pid -> status of `model`'s workers as the management API lists them (READY ones have a pid)."""
    return {pid: status for pid, (_, status) in _listed(management_url, model).items() if pid > 0}


def _listed(management_url: str, model: str) -> dict[int, tuple[str, str]]:
    """pid (or -n for a worker without one yet) -> (worker id, status)."""
    try:
        described = requests.get(f"{management_url}/models/{model}", timeout=5).json()
    except (requests.RequestException, ValueError):
        return {}
    listed = {}
    for n, worker in enumerate(described[0].get("workers", []), start=1):
        pid = worker.get("pid")
        listed[int(pid) if isinstance(pid, int) and pid > 0 else -n] = (str(worker.get("id")), str(worker.get("status")))
    return listed


def worker_processes(management_url: str, model: str, server_pid: int) -> dict[int, str]:
    """pid -> status of every process of `model`'s workers under TorchServe `server_pid`, the
    ones still starting (status not READY, no pid in the API yet) included."""
    by_socket = {f".ts.sock.{wid}": status for wid, status in _listed(management_url, model).values()}
    found = {}
    try:
        children = psutil.Process(server_pid).children(recursive=True)
    except psutil.Error:
        return {}
    for proc in children:
        try:
            command = proc.cmdline()
        except psutil.Error:
            continue
        socket = next((part for part in command if ".ts.sock." in part), "")
        status = next((s for suffix, s in by_socket.items() if socket.endswith(suffix)), None)
        if "model_service_worker" in " ".join(command) and status is not None:
            found[proc.pid] = status
    return found


def _signal(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def kill_workers(management_url: str, model: str, server_pid: int, fault: Fault) -> None:
    """SIGKILL every worker process of `model` now, whatever its state."""
    for pid, status in worker_processes(management_url, model, server_pid).items():
        if _signal(pid, signal.SIGKILL):
            fault.hits.append(f"{pid} {status}")


def kill_once(management_url: str, model: str, server_pid: int) -> Fault:
    return once(Fault("kill once", model, time.time()), lambda fault: kill_workers(management_url, model, server_pid, fault))


def kill_loop(management_url: str, model: str, server_pid: int, seconds: float, period: float) -> Fault:
    """SIGKILL every worker of `model` every `period` s for `seconds`: after the first round the
    kills land on the replacements while they start (their status is not READY yet)."""
    return loop(Fault(f"kill loop ({period:g} s, {seconds:g} s)", model, time.time()),
                lambda fault: kill_workers(management_url, model, server_pid, fault), seconds, period)


def once(fault: Fault, kill: Callable[[Fault], None]) -> Fault:
    """`kill` once, recorded in `fault` (natively, or through docker exec)."""
    kill(fault)
    fault.ended = time.time()
    return fault


def loop(fault: Fault, kill: Callable[[Fault], None], seconds: float, period: float) -> Fault:
    """`kill` every `period` s for `seconds`, recorded in `fault`."""
    while time.time() - fault.began < seconds:
        kill(fault)
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


def fill_disk(folder: str, seconds: float) -> Fault:
    """Fill the filesystem of `folder` (the stack's log folder, on a small tmpfs of its own) to the
    last byte for `seconds`, then free it: TorchServe cannot write a log line meanwhile."""
    fault = Fault(f"log folder's disk full for {seconds:g} s", "", time.time())
    filler = os.path.join(folder, "chaos-filler")
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * (1 << 20))
        except OSError as full:   # ENOSPC: the disk is full
            stats = os.statvfs(folder)
            fault.hits.append(f"{folder}: {full.strerror}, {stats.f_bavail * stats.f_frsize} bytes left")
            try:   # the last partial block too
                out.write(b"\0" * (stats.f_bavail * stats.f_frsize))
            except OSError:
                pass
    time.sleep(seconds)
    os.unlink(filler)
    fault.ended = time.time()
    fault.whole_server = True
    return fault
