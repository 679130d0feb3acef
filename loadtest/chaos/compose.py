"""The compose stack (`make up`: docker-compose.yml) as the chaos run's target, and its faults.

`--against-compose` starts `docker/compose.sh up torchserve prometheus` under a project name of its
own on free loopback ports (as tests/live/test_compose_stack.py does) and takes it down after.
The faults act from outside the container, as an operator or the kernel would:

- a model's workers: `docker exec` into the TorchServe container, find the worker processes from
  /proc (their unix socket names carry the management API's worker ids, as natively), signal them;
- the container: `docker kill` (SIGKILL to the whole container), or SIGKILL of the JVM alone inside
  it (a crash: the container's main process exits, and its `restart:` policy applies). Docker's
  restart policy does not restart a container that `docker kill` stopped (the engine marks the
  kill as a manual stop), so after `docker kill` the run restarts it with `docker start`, as an
  operator would, and says so in the report.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from loadtest.chaos import faults
from loadtest.chaos.faults import Fault, _listed
from stackctl import paths
from stackctl.serve.native import free_port

# Lists (pid, argv) of every process in the container: the image has Python but no procps.
_PS = ("import os, json; out = []\n"
       "for p in os.listdir('/proc'):\n"
       "    try: out.append([int(p), open(f'/proc/{p}/cmdline', 'rb').read().decode(errors='replace').split('\\0')])\n"
       "    except (ValueError, OSError): pass\n"
       "print(json.dumps(out))")
_PORTS = ("INFERENCE_PORT", "MANAGEMENT_PORT", "METRICS_PORT", "PROMETHEUS_PORT", "LOCUST_PORT", "GRAFANA_PORT",
          "GRPC_PORT")  # every port docker-compose.yml publishes: a running `make serve` holds the defaults


def _run(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env, check=False)


@dataclass
class ComposeStack:
    project: str
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def up(cls, services: tuple[str, ...] = ("torchserve", "prometheus")) -> ComposeStack:
        project = f"chaos-{uuid.uuid4().hex[:8]}"
        env = {**os.environ, **{name: str(free_port()) for name in _PORTS},
               "COMPOSE_PROJECT_NAME": project, "STACK_VARIANT": os.environ.get("STACK_VARIANT", "cpu")}
        stack = cls(project, env)
        started = stack.compose("up", *services, timeout=900)
        if started.returncode != 0:
            stack.down()
            raise SystemExit(f"compose up failed:\n{started.stdout[-2000:]}{started.stderr[-2000:]}")
        return stack

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return _run(str(Path(paths.ROOT) / "docker" / "compose.sh"), *args, timeout=timeout, env=self.env)

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", timeout=300)

    def url(self, service: str, port: int) -> str:
        return "http://" + self.compose("port", service, str(port)).stdout.strip().replace("0.0.0.0", "127.0.0.1")

    def container(self, service: str = "torchserve") -> str:
        return self.compose("ps", "-a", "-q", service).stdout.split()[0]


def processes(container: str) -> list[tuple[int, list[str]]]:
    answer = _run("docker", "exec", container, "python", "-c", _PS, timeout=30)
    try:
        return [(int(pid), argv) for pid, argv in json.loads(answer.stdout)]
    except ValueError:
        return []


def worker_processes(container: str, management_url: str, model: str) -> dict[int, str]:
    """pid (in the container) -> status of every process of `model`'s workers: the READY ones
    by the pid the management API gives (the container's pid namespace), the starting ones (no
    pid in the API yet) by their socket name in /proc."""
    listed = _listed(management_url, model)
    found = {pid: status for pid, (_, status) in listed.items() if pid > 0}
    by_socket = {f".ts.sock.{wid}": status for wid, status in listed.values()}
    scanned = processes(container)
    for pid, argv in scanned:
        socket = next((part for part in argv if ".ts.sock." in part), "")
        status = next((s for suffix, s in by_socket.items() if socket.endswith(suffix)), None)
        if "model_service_worker" in " ".join(argv) and status is not None:
            found[pid] = status
    if not found:   # say why, in the run's log: nothing to signal is a finding, not a silent no-op
        workers = [" ".join(argv)[:160] for _, argv in scanned if "model_service_worker" in " ".join(argv)]
        print(f"chaos: no {model} worker found: API lists {listed}; {len(scanned)} processes, workers: {workers[:4]}",
              flush=True)
    return found


_KILL = ("import os, signal, sys\n"
         "for pid in sys.argv[2:]:\n"
         "    try: os.kill(int(pid), getattr(signal, 'SIG' + sys.argv[1]))\n"
         "    except ProcessLookupError: pass")


def _signal(container: str, pids: list[int], signal: str) -> bool:
    """Signal processes in the container from inside it (the image has Python, not procps)."""
    return bool(pids) and _run("docker", "exec", container, "python", "-c", _KILL, signal, *map(str, pids)).returncode == 0


def kill_workers(container: str, management_url: str, model: str, fault: Fault) -> None:
    found = worker_processes(container, management_url, model)
    if _signal(container, list(found), "KILL"):
        fault.hits += [f"{pid} {status}" for pid, status in found.items()]


def kill_once(container: str, management_url: str, model: str) -> Fault:
    return faults.once(Fault("kill once (docker exec)", model, time.time()),
                       lambda fault: kill_workers(container, management_url, model, fault))


def kill_loop(container: str, management_url: str, model: str, seconds: float, period: float) -> Fault:
    return faults.loop(Fault(f"kill loop (docker exec, {period:g} s, {seconds:g} s)", model, time.time()),
                       lambda fault: kill_workers(container, management_url, model, fault), seconds, period)


def stop_continue(container: str, management_url: str, model: str, seconds: float) -> Fault:
    fault = Fault(f"SIGSTOP {seconds:g} s (docker exec)", model, time.time())
    ready = sorted(pid for pid, status in worker_processes(container, management_url, model).items() if status == "READY")
    if ready and _signal(container, ready[:1], "STOP"):
        fault.hits.append(f"{ready[0]} READY")
        time.sleep(seconds)
        _signal(container, ready[:1], "CONT")
    fault.ended = time.time()
    return fault


def _state(container: str) -> str:
    return _run("docker", "inspect", "-f", "{{.State.Status}} {{.RestartCount}}", container).stdout.strip()


def container_kill(container: str, policy_wait_s: float) -> Fault:
    """`docker kill` the TorchServe container; if its restart policy has not restarted it within
    `policy_wait_s`, `docker start` it. The hits say which happened."""
    fault = Fault("docker kill of the TorchServe container", "", time.time())
    before = _state(container)
    if _run("docker", "kill", container).returncode == 0:
        fault.hits.append(f"{container[:12]} docker kill ({before})")
    deadline = time.time() + policy_wait_s
    while time.time() < deadline and not _state(container).startswith("running"):
        time.sleep(0.5)
    after = _state(container)
    if after.startswith("running"):
        fault.hits.append(f"restarted by its restart policy ({after})")
    else:
        fault.hits.append(f"not restarted by its policy within {policy_wait_s:g} s ({after}): docker start")
        _run("docker", "start", container)
    fault.ended = time.time()
    return fault


def jvm_crash(container: str) -> Fault:
    """SIGKILL the JVM inside the container (a crash, not an operator's kill): tini exits with it,
    and the container's `restart:` policy brings it back."""
    fault = Fault("TorchServe's JVM SIGKILLed in the container (a crash)", "", time.time())
    before = _state(container)
    java = [pid for pid, argv in processes(container) if argv and argv[0].endswith("java")]
    if _signal(container, java, "KILL"):
        fault.hits.append(f"java {java} killed ({before})")
    fault.ended = time.time()
    return fault


def prometheus_hooks(container: str, ready_url: str, policy_wait_s: float = 20.0) -> tuple[int | None, Callable[[], None]]:
    """For faults.kill_and_restart: Prometheus's host pid (the container's first process, which a
    host SIGKILL crashes, unlike `docker kill`, so `restart: unless-stopped` applies), and the
    restart: wait for the policy to bring it back (`docker start` if it has not within
    `policy_wait_s`), then for its /-/ready."""
    pid = _run("docker", "inspect", "-f", "{{.State.Pid}}", container).stdout.strip()

    def restart() -> None:
        deadline = time.time() + policy_wait_s
        while time.time() < deadline and not _state(container).startswith("running"):
            time.sleep(0.5)
        if not _state(container).startswith("running"):
            _run("docker", "start", container)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if requests.get(ready_url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
    return (int(pid) if pid.isdigit() and int(pid) > 0 else None), restart


def restarted(container: str) -> str:
    return _state(container)


MEMORY_CGROUP = Path("/sys/fs/cgroup/memory")   # cgroup v1 (this host's engine: cgroupfs driver)


def _host_worker_pid(container: str, management_url: str, model: str) -> tuple[int, int] | None:
    """(host pid, pid in the container) of one READY worker of `model`: `docker top` gives host
    pids, and each one's /proc status (NSpid) its pid in the container, which the API lists."""
    ready = {pid for pid, (_, status) in _listed(management_url, model).items() if pid > 0 and status == "READY"}
    for line in _run("docker", "top", container, "-eo", "pid").stdout.split()[1:]:
        try:
            status = Path(f"/proc/{int(line)}/status").read_text()
        except (ValueError, OSError):
            continue
        nspids = next((row.split()[1:] for row in status.splitlines() if row.startswith("NSpid:")), [])
        if nspids and int(nspids[-1]) in ready:
            return int(line), int(nspids[-1])
    return None


def worker_oom(container: str, management_url: str, model: str, wait_s: float = 30.0,
               provoke: Callable[[], int] | None = None) -> Fault:
    """One worker out of memory under a cgroup limit, the kernel's OOM killer doing the kill.

    Nothing in the handler changes: a memory cgroup of its own is made under the container's
    (cgroup v1: /sys/fs/cgroup/memory/docker/<container id>/chaos-oom, root on this host), its
    worker is moved into it, its limit is set 256 KiB above what is charged to it (new allocations
    only: charges stay where they were made), and the next requests' allocations push it over: the OOM killer kills it
    (SIGKILL) within that cgroup only. Its replacement is started by the JVM in the container's
    own cgroup, without the limit; the empty cgroup is removed after.

    A worker that serves the load's small bodies reuses memory it already holds and may never
    allocate anew: `provoke` sends one valid request that needs fresh memory (a large image), the
    usual way a worker meets its limit in production; its HTTP status is recorded."""
    fault = Fault("worker OOM-killed under a cgroup memory limit", model, time.time())
    cid = _run("docker", "inspect", "-f", "{{.Id}}", container).stdout.strip()
    group = MEMORY_CGROUP / "docker" / cid / "chaos-oom"
    found = _host_worker_pid(container, management_url, model)
    if found is None or not group.parent.is_dir():
        fault.hits.append(f"skipped: no READY worker or no cgroup v1 memory controller at {group.parent}")
        fault.ended = time.time()
        return fault
    pid, inner = found
    group.mkdir(exist_ok=True)
    try:
        # Charges do not move with a task (this kernel no longer moves them): the group's usage
        # starts near 0 and what the worker allocates from now on is charged to it.
        (group / "cgroup.procs").write_text(str(pid))
        usage = int((group / "memory.usage_in_bytes").read_text())
        (group / "memory.limit_in_bytes").write_text(str(usage + 256 * 1024))
        deadline, provoked = time.time() + wait_s, []
        while time.time() < deadline and Path(f"/proc/{pid}").exists():
            if provoke is not None:
                provoked.append(provoke())
            time.sleep(0.1)
        oom = (group / "memory.oom_control").read_text().split()
        killed = oom[oom.index("oom_kill") + 1] if "oom_kill" in oom else "?"
        # "<pid> READY ...": recovery.watch reads the hit pids from the first word
        fault.hits.append(f"{inner} READY (host pid {pid}, limit {usage // 2**20} MiB + 256 KiB, oom_kill={killed}"
                          + (f", large requests answered {provoked})" if provoke is not None else ")"))
    finally:
        fault.ended = time.time()
        for leftover in (group / "cgroup.procs").read_text().split():   # still alive: back to the container's
            (group.parent / "cgroup.procs").write_text(leftover)
        group.rmdir()
    return fault
