"""Run the stack natively (no containers): TorchServe, its front door and Prometheus as
background processes.

`make serve` and the integration-test fixtures both use `NativeStack`, so tests exercise the
same start-up path users run. The inference port is the front door's (nginx, stackctl.serve.front_door);
TorchServe's inference API sits behind it on a loopback port of its own. Each stack keeps its
state (pids, logs, Prometheus targets and data) in one run directory; processes run in their own
session so stopping kills their children.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from stackctl import paths
from stackctl.catalog import versions
from stackctl.catalog.specs import all_specs, workers_on_host
from stackctl.serve import front_door, oip_launch, process_groups, readiness

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10000


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(avoid: frozenset[int] = frozenset()) -> int:
    """A loopback port free now, below the kernel's ephemeral range where it can: a port from that
    range can be taken by any outgoing connection (a load generator opens hundreds) between this
    check and the server's bind, which once stopped a bench run with "Address already in use"."""
    try:
        ephemeral_low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768  # Linux's default
    rng = random.SystemRandom()
    for _ in range(200 if ephemeral_low - LOWEST_PORT > 1000 else 0):
        port = rng.randrange(LOWEST_PORT, ephemeral_low)
        if port not in avoid and _bindable(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass(frozen=True)
class Ports:
    inference: int = 8080
    management: int = 8081
    metrics: int = 8082
    prometheus: int = 9090
    worker_base: int = 9000  # TorchServe workers listen on unix sockets named after this number
    # TorchServe's own inference API, behind the front door (loopback); 0: a free port at start.
    torchserve_inference: int = 0
    # The OIP gateway (stackctl.serve.oip_gateway): its gRPC port, on the stack's host, and its
    # internal REST port behind the front door (loopback; 0: a free port at start).
    oip_grpc: int = 7070
    oip_rest: int = 0

    @classmethod
    def from_env(cls) -> Ports:
        env = os.environ
        return cls(int(env.get("INFERENCE_PORT", 8080)), int(env.get("MANAGEMENT_PORT", 8081)),
                   int(env.get("METRICS_PORT", 8082)), int(env.get("PROMETHEUS_PORT", 9090)),
                   int(env.get("WORKER_PORT_BASE", 9000)), oip_grpc=int(env.get("GRPC_PORT", 7070)))

    @classmethod
    def free(cls) -> Ports:
        chosen: list[int] = []
        for _ in range(7):
            chosen.append(free_port(frozenset(chosen)))
        # Workers use unix sockets named after worker_base; gRPC binds worker_base + 500 and + 501.
        while True:
            grpc = free_port(frozenset(chosen))
            if grpc + 1 not in chosen and _bindable(grpc + 1):
                break
        inference, management, metrics, prometheus, torchserve_inference, oip_grpc, oip_rest = chosen
        return cls(inference, management, metrics, prometheus, grpc - 500, torchserve_inference, oip_grpc, oip_rest)


def torchserve_command(model_store: Path, config_file: Path = paths.SERVER_CONFIG) -> list[str]:
    """The server command line; the container's CMD is the same with /app paths (tested)."""
    return [str(Path(sys.executable).with_name("torchserve")), "--foreground",
            "--ts-config", str(config_file), "--model-store", str(model_store),
            "--models", "all", "--disable-token-auth", "--ncs"]


class _PortUrl:
    """`stack.<port>_url`: http://<stack.host>:<stack.ports.<port>>, computed on each read (as a property)."""

    def __init__(self, port: str) -> None:
        self.port = port

    def __get__(self, stack: NativeStack, owner: type | None = None) -> str:
        return f"http://{stack.host}:{getattr(stack.ports, self.port)}"


@dataclass
class NativeStack:
    run_dir: Path
    ports: Ports
    model_store: Path = paths.MODEL_STORE
    host: str = "127.0.0.1"
    # Off: TorchServe itself answers on ports.inference (the benchmark measures it so).
    front_door: bool = True

    # --- URLs ---------------------------------------------------------------------------------
    inference_url = _PortUrl("inference")
    management_url = _PortUrl("management")
    metrics_url = _PortUrl("metrics")
    prometheus_url = _PortUrl("prometheus")

    @property
    def torchserve_inference_port(self) -> int:
        """Where TorchServe's own inference API listens: behind the front door, or the public port."""
        return self.ports.torchserve_inference if self.front_door else self.ports.inference

    # --- environment ----------------------------------------------------------------------------
    def torchserve_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        logs = self.run_dir / "logs"
        tmp = self.run_dir / "tmp"
        env = dict(os.environ)
        env.update({
            "TS_INFERENCE_ADDRESS": f"http://{self.host}:{self.torchserve_inference_port}",
            "TS_MANAGEMENT_ADDRESS": f"http://{self.host}:{self.ports.management}",
            "TS_METRICS_ADDRESS": f"http://{self.host}:{self.ports.metrics}",
            "TS_INITIAL_WORKER_PORT": str(self.ports.worker_base),
            # TorchServe's own gRPC is not used (the OIP gateway's is, on ports.oip_grpc); give it
            # ports of this stack so two stacks never collide.
            "TS_GRPC_INFERENCE_PORT": str(self.ports.worker_base + 500),
            "TS_GRPC_MANAGEMENT_PORT": str(self.ports.worker_base + 501),
            "LOG_LOCATION": str(logs),
            "METRICS_LOCATION": str(logs),
            # TorchServe keeps its pid file and unpacked archives in the temp dir: one per stack.
            "TMPDIR": str(tmp), "TEMP": str(tmp),
            "STACK_WORKERS_PER_HOST": str(workers_on_host(all_specs())),
            "PYTHONUNBUFFERED": "1",
        })
        # Idle OpenMP threads sleep instead of spinning: on a shared host spinning workers starve
        # each other (measured 9x on mobilenet with 2 threads; bench/NOTES.md).
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        env.update(extra or {})
        return env

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None,
               cwd: Path = paths.ROOT) -> subprocess.Popen:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.run_dir / f"{name}.out", "ab")
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self._pid_file(name).write_text(str(proc.pid))
        return proc

    # --- TorchServe -------------------------------------------------------------------------------
    def start_torchserve(self, extra_env: dict[str, str] | None = None,
                         command: list[str] | None = None) -> subprocess.Popen:
        """TorchServe, and its front door unless that is already running (it outlives a restart of
        TorchServe, as it does in a container, and answers 502 meanwhile)."""
        if self.front_door and not self.ports.torchserve_inference:
            self.ports = replace(self.ports, torchserve_inference=free_port())
        if self.front_door and not self.ports.oip_rest:
            self.ports = replace(self.ports, oip_rest=free_port(frozenset(asdict(self.ports).values())))
        door_up = self.front_door and self.running("front-door")
        gateway_up = not self.front_door or self.running("oip-gateway")
        public = ([] if door_up else [self.ports.inference]) + ([] if gateway_up else [self.ports.oip_grpc, self.ports.oip_rest])
        for p in (*public, self.torchserve_inference_port, self.ports.management, self.ports.metrics):
            if port_in_use(p, self.host):
                raise RuntimeError(f"port {p} is already in use on {self.host}; set INFERENCE_PORT/"
                                   "MANAGEMENT_PORT/METRICS_PORT/GRPC_PORT or stop what is there")
        for sub in ("logs", "tmp"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        archives = sorted(self.model_store.glob("*.mar"))
        if not archives:
            raise RuntimeError(f"no archives in {self.model_store}: run `make models` first")
        # Defaults by load order (stackctl.catalog.versions); a new server must load every model again
        # before it is ready (stackctl.serve.readiness).
        cmd = versions.ordered_models(command or torchserve_command(self.model_store))
        readiness.clear_marker(self.management_url)
        proc = self._spawn("torchserve", cmd, self.torchserve_env(extra_env))
        if self.front_door and not door_up:
            self.start_front_door()
        if not gateway_up:
            self.start_oip_gateway()
        self._save_ports()
        return proc

    def start_front_door(self) -> subprocess.Popen:
        conf = front_door.render(self.run_dir / "front-door", f"{self.host}:{self.ports.inference}",
                                 f"{self.host}:{self.ports.torchserve_inference}", model_store=self.model_store,
                                 gateway=f"{self.host}:{self.ports.oip_rest}")
        return self._spawn("front-door", front_door.command(conf))

    @property
    def oip_grpc_address(self) -> str:
        return f"{self.host}:{self.ports.oip_grpc}"

    @property
    def oip_rest_url(self) -> str:
        return f"http://{self.host}:{self.ports.oip_rest}"

    def start_oip_gateway(self) -> subprocess.Popen:
        """The OIP gateway (stackctl.serve.oip_gateway): gRPC on ports.oip_grpc, its REST routes
        on ports.oip_rest behind the front door; like the door, it outlives a TorchServe restart."""
        env = oip_launch.gateway_env(os.environ, self.oip_grpc_address, f"{self.host}:{self.ports.oip_rest}",
                                     self.inference_url, self.management_url, self.model_store)
        return self._spawn("oip-gateway", oip_launch.command(), env)

    def wait_for_torchserve(self, proc: subprocess.Popen | None = None, timeout: float = 180.0,
                            token: str | None = None) -> dict[str, list[str]]:
        expected = {versions.model_name(p) for p in self.model_store.glob("*.mar")}
        alive = readiness.process_alive(proc) if proc is not None else (lambda: self.running("torchserve"))
        started = time.monotonic()
        status = readiness.wait_until_ready(self.management_url, expected, timeout, alive, token=token)
        if self.front_door:
            # TorchServe's /ping through the front door: both listen, and the door reaches TorchServe.
            # Any answer of TorchServe's counts (with token auth on, /ping without the inference
            # key is a 400); only the door's own 502 means it does not reach TorchServe yet.
            readiness.wait_for_http(f"{self.inference_url}/ping", max(5.0, timeout - (time.monotonic() - started)),
                                    lambda: self.running("front-door"), accepted=lambda status: status != 502)
            # The OIP gateway through the front door: server metadata answers once both listen.
            readiness.wait_for_http(f"{self.inference_url}/v2", max(5.0, timeout - (time.monotonic() - started)),
                                    lambda: self.running("oip-gateway"))
        return status

    # --- Prometheus -------------------------------------------------------------------------------
    def prepare_prometheus(self) -> Path:
        """run/prometheus/: the real config and rules (symlinks) plus this stack's own targets."""
        home = self.run_dir / "prometheus"
        (home / "targets").mkdir(parents=True, exist_ok=True)
        for name in ("prometheus.yml", "rules"):
            link = home / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(paths.PROMETHEUS_CONFIG_DIR / name)
        target = [{"targets": [f"{self.host}:{self.ports.metrics}"], "labels": {"deployment": "native"}}]
        (home / "targets" / "torchserve.json").write_text(json.dumps(target, indent=1) + "\n")
        (home / "targets" / "dcgm.json").write_text("[]\n")  # no GPU exporter natively
        return home

    def start_prometheus(self) -> subprocess.Popen:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: run `make system-deps` (Debian package prometheus)")
        if port_in_use(self.ports.prometheus, self.host):
            raise RuntimeError(f"port {self.ports.prometheus} is already in use; set PROMETHEUS_PORT")
        home = self.prepare_prometheus()
        command = [binary, f"--config.file={home / 'prometheus.yml'}",
                   f"--storage.tsdb.path={home / 'data'}",
                   f"--web.listen-address={self.host}:{self.ports.prometheus}",
                   "--web.enable-lifecycle", "--storage.tsdb.retention.time=2d"]
        proc = self._spawn("prometheus", command)
        self._save_ports()
        return proc

    def wait_for_prometheus(self, proc: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
        alive = readiness.process_alive(proc) if proc is not None else (lambda: self.running("prometheus"))
        readiness.wait_for_http(f"{self.prometheus_url}/-/ready", timeout, alive)

    # --- lifecycle ----------------------------------------------------------------------------
    def _save_ports(self) -> None:
        (self.run_dir / "ports.json").write_text(json.dumps(asdict(self.ports)))

    def pid(self, name: str) -> int | None:
        try:
            return int(self._pid_file(name).read_text())
        except (OSError, ValueError):
            return None

    def running(self, name: str) -> bool:
        pid = self.pid(name)
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return process_groups.state_of(pid) not in ("Z", None)  # a zombie (exited, not reaped) is not running

    def stop(self, name: str, timeout: float = 20.0) -> bool:
        """SIGTERM the process group, then SIGKILL what is left after `timeout`. True if it was up."""
        pid = self.pid(name)
        if pid is None:
            return False
        was_running = self.running(name)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process_groups.group_alive(pid):
                process_groups.reap(pid)
                time.sleep(0.1)
            if not process_groups.group_alive(pid):
                break
        process_groups.reap(pid)
        self._pid_file(name).unlink(missing_ok=True)
        return was_running

    def stop_all(self) -> list[str]:
        # The gateway before the front door: its calls in flight go through the door.
        # tritonserver: `make serve RUNTIME=triton` (stackctl/serve/triton.py), in the same run dir.
        return [name for name in ("prometheus", "oip-gateway", "front-door", "torchserve", "tritonserver")
                if self.stop(name)]

    @classmethod
    def from_run_dir(cls, run_dir: Path, model_store: Path = paths.MODEL_STORE) -> NativeStack:
        saved = run_dir / "ports.json"
        ports = Ports(**json.loads(saved.read_text())) if saved.is_file() else Ports.from_env()
        return cls(run_dir=run_dir, ports=ports, model_store=model_store)
