"""The image's entry point under tini: runs the TorchServe launcher and its front door, and makes
`docker stop` a drain.

    tini -- python -m stackctl.serve.container torchserve --foreground ...

* Front door: with STACK_FRONT_DOOR=on (the image sets it) nginx listens on TS_INFERENCE_ADDRESS,
  the public inference address, and TorchServe's inference API moves to 127.0.0.1 on
  STACK_TORCHSERVE_INFERENCE_PORT (stackctl.serve.front_door says why). Its config and temp files go
  to a folder under the temp dir (/tmp: the root filesystem may be read-only).

* OIP gateway: with the front door and OIP_GRPC_ADDRESS (the image sets 0.0.0.0:7070), the
  Open Inference Protocol's gRPC service and the REST routes the front door proxies GET /v2...
  to (stackctl.serve.oip_gateway, started as stackctl.serve.oip_launch says). It stops first
  (SIGTERM: no new calls, those in flight finish through the front door, which still serves
  them), within the front door's stop time; then the front door as below.
* Stop: tini passes SIGTERM to this process only. The front door goes first, gracefully (SIGQUIT:
  it closes its listener, so new connections are refused, and finishes the requests it holds,
  which TorchServe still serves). Then the signal goes to the JVM alone, which finishes what is
  left, stops its workers and exits; the launcher (which forwards no signals and would die at
  once, taking the container with it) then returns. In the other order, requests arriving during
  TorchServe's drain got the front door's 502 instead of a refused connection a client can retry
  elsewhere. The front door gets as long as its longest bound on waiting plus a margin
  (stackctl.serve.front_door.stop_wait_s: 71 s with the shipped specs), so a request within its
  model's responseTimeout is answered across a stop; only then is nginx killed. Connections that arrive after the signal are refused (or reset, if the kernel had
  queued them), so a load balancer must drop the endpoint first (k8s: preStop).
* Token auth: TorchServe writes key_file.json into its working directory. Under a read-only root
  that fails and the server exits 0, so with auth on the server runs in TS_KEY_DIR (the image
  sets /tmp, which must be a writable tmpfs under a read-only root) after the relative paths it
  would resolve against /app are made absolute. The image also sets TS_KEY_FILE there, so its
  health check finds the management key.
* A server, front door or gateway that stops on its own is a failure, whatever its exit status,
  so restart policies and orchestrators notice; the others are stopped with it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import psutil

from stackctl import paths
from stackctl.serve import front_door, oip_launch

DISABLE_FLAG = "--disable-token-auth"
# Settings TorchServe resolves against its working directory (config.properties, log4j).
RELATIVE_SETTINGS = {"TS_METRICS_CONFIG": "config/metrics.yaml", "LOG_LOCATION": "logs",
                     "METRICS_LOCATION": "logs"}
FRONT_DOOR = "STACK_FRONT_DOOR"
# Logs as JSON lines on stdout, none on disk (config/log4j2-stdout.xml says why); "files" keeps
# TorchServe's own rotating files under LOG_LOCATION.
LOGS_ENV = "STACK_LOGS"
JSON_LOG_CONFIG = paths.CONFIG / "log4j2-stdout.xml"
UPSTREAM_PORT = "STACK_TORCHSERVE_INFERENCE_PORT"
DEFAULT_UPSTREAM_PORT = "8079"


def front_door_plan(command: list[str], env: dict[str, str]) -> tuple[dict[str, str], Path, float] | None:
    """(TorchServe's environment, the front door's rendered config, how long its graceful stop may
    take), or None when it is off."""
    if env.get(FRONT_DOOR, "").lower() != "on":
        return None
    config = Path(command[command.index("--ts-config") + 1]) if "--ts-config" in command else paths.SERVER_CONFIG
    public = front_door.host_port(front_door.server_setting("inference_address", config, env))
    upstream = f"127.0.0.1:{env.get(UPSTREAM_PORT) or DEFAULT_UPSTREAM_PORT}"
    run_dir = Path(tempfile.mkdtemp(prefix="front-door-"))
    gateway = oip_launch.rest_address(env) if env.get(oip_launch.GRPC_ADDRESS) else None
    conf = front_door.render(run_dir, public, upstream, config, env, gateway=gateway)
    return {**env, "TS_INFERENCE_ADDRESS": f"http://{upstream}"}, conf, front_door.stop_wait_s(config, env)


def gateway_env(command: list[str], env: dict[str, str]) -> dict[str, str] | None:
    """The OIP gateway's environment (stackctl.serve.oip_launch), or None when it is off: it runs
    with the front door, which proxies its REST routes and takes its gRPC calls' inference."""
    if env.get(FRONT_DOOR, "").lower() != "on":
        return None
    config = Path(command[command.index("--ts-config") + 1]) if "--ts-config" in command else paths.SERVER_CONFIG
    public = front_door.host_port(front_door.server_setting("inference_address", config, env))
    store = Path(command[command.index("--model-store") + 1]) if "--model-store" in command else paths.MODEL_STORE
    return oip_launch.container_env(env, public, store)


def first_to_exit(processes: list[subprocess.Popen | None], stopping: Callable[[], bool]) -> subprocess.Popen:
    """The first of the server, the front door and the gateway to exit; once stopping, the
    gateway (processes[2], stopped first on purpose) no longer counts."""
    while True:
        for index, process in enumerate(processes):
            if process is not None and process.poll() is not None and not (index == 2 and stopping()):
                return process
        time.sleep(0.2)


def stop_gateway(gateway: subprocess.Popen | None, wait_s: float) -> None:
    """The OIP gateway's graceful stop (SIGTERM: no new calls; those in flight finish through the
    front door, which still serves them), or killed after wait_s."""
    if gateway is None or gateway.poll() is not None:
        return
    gateway.terminate()
    try:
        gateway.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        gateway.kill()
        gateway.wait()


def stop_frontends(gateway: subprocess.Popen | None, door: subprocess.Popen | None, wait_s: float) -> None:
    """The gateway, then the front door: gRPC calls in flight reach TorchServe through the door."""
    stop_gateway(gateway, wait_s)
    stop_front_door(door, wait_s)


def stop_front_door(door: subprocess.Popen | None, wait_s: float) -> None:
    """Graceful stop: nginx closes its listener and finishes the requests it holds (TorchServe
    still serves them) within wait_s, or is killed."""
    if door is None or door.poll() is not None:
        return
    door.send_signal(signal.SIGQUIT)
    try:
        door.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        door.kill()
        door.wait()


def token_auth_on(command: list[str], env: dict[str, str]) -> bool:
    return DISABLE_FLAG not in command and env.get("TS_DISABLE_TOKEN_AUTHORIZATION", "").lower() == "false"


def server_workdir(command: list[str], env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """Where the server runs, and its environment: here, unless token auth needs a writable place
    (TS_KEY_DIR if set, else here if writable, else the temp dir)."""
    here = Path.cwd()
    if not token_auth_on(command, env):
        return here, env
    key_dir = Path(env.get("TS_KEY_DIR") or (here if os.access(here, os.W_OK) else tempfile.gettempdir()))
    if key_dir == here:
        return here, env
    moved = dict(env)
    for name, relative in RELATIVE_SETTINGS.items():
        moved.setdefault(name, str(here / relative))
    print(f"token auth: TorchServe runs in {key_dir} and writes its keys to {key_dir / 'key_file.json'}",
          file=sys.stderr, flush=True)
    return key_dir, moved


def jvms(launcher: psutil.Process) -> list[psutil.Process]:
    try:
        return [p for p in launcher.children(recursive=True) if p.name() == "java"]
    except psutil.NoSuchProcess:
        return []


def prepare_start(command: list[str], env: dict[str, str]) -> list[str]:
    """Before TorchServe starts: the default versions named by the load order (stackctl.catalog.versions:
    set at load time, before readiness, the same on every replica), no "was ready once" marker
    left from an earlier server in this container (stackctl.serve.readiness: this one must load every
    model before it is ready), and the JSON-lines log config unless one is given."""
    from stackctl.catalog import versions
    from stackctl.serve import readiness

    ordered = versions.ordered_models(command)
    # Said whenever the store serves several versions of a model, reordered here or by the caller.
    defaults = versions.default_versions(Path(command[command.index("--model-store") + 1])) \
        if "--model-store" in command else {}
    if defaults:
        print("default versions: " + ", ".join(f"{n} {v}" for n, v in defaults.items())
              + " (registered first)", file=sys.stderr, flush=True)
    port = urlparse(env.get("TS_MANAGEMENT_ADDRESS", "http://127.0.0.1:8081")).port or 8081
    readiness.clear_marker(f"http://127.0.0.1:{port}", env)
    if env.get(LOGS_ENV, "json").lower() == "json" and "--log-config" not in ordered:
        ordered = [*ordered, "--log-config", str(JSON_LOG_CONFIG)]
    return ordered


def refuse_start(command: list[str]) -> int | None:
    """The exit status when the server must not start: no command (usage), or a GPU deployment
    without CUDA (one line, and no start: never ready on the CPU)."""
    if not command:
        print("usage: python -m stackctl.serve.container torchserve --foreground ...", file=sys.stderr)
        return 2
    from handlers.device_check import check as cuda_problem

    problem = cuda_problem()
    if problem:
        print(problem, file=sys.stderr, flush=True)
        return 1
    return None


def drain_server(launcher: subprocess.Popen | None, signum: int) -> None:
    """The signal to the JVM alone (it drains); the launcher forwards none."""
    if launcher is None:
        return   # a signal during the start: handled right after it
    try:
        root = psutil.Process(launcher.pid)
        # Before the JVM exists there is nothing to drain: stop the launcher itself.
        for process in jvms(root) or [root]:
            process.send_signal(signum)
    except psutil.NoSuchProcess:
        pass   # already gone: wait() below returns


def main(argv: list[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    refused = refuse_start(command)
    if refused is not None:
        return refused
    workdir, env = server_workdir(command, dict(os.environ))
    command = prepare_start(command, env)
    plan = front_door_plan(command, env)
    oip_env = gateway_env(command, env)
    launcher: subprocess.Popen | None = None
    door: subprocess.Popen | None = None
    gateway: subprocess.Popen | None = None
    door_stop_s = plan[2] if plan is not None else 0.0
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if any(p is not None and p.poll() is None for p in (door, gateway)):
            # Graceful, each killed after door_stop_s; the server's turn comes once the door has gone (below).
            threading.Thread(target=stop_frontends, args=(gateway, door, door_stop_s), daemon=True).start()
            return
        drain_server(launcher, signum)

    # Handlers first: a stop that arrives while the launcher starts must not kill this process.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if plan is not None:
        env, conf, _ = plan
        door = subprocess.Popen(front_door.command(conf), env=env)
    if oip_env is not None:
        gateway = subprocess.Popen(oip_launch.command(), env=oip_env)
    launcher = subprocess.Popen(command, cwd=workdir, env=env)
    if stopping:
        stop(signal.SIGTERM, None)
    first = first_to_exit([launcher, door, gateway], lambda: stopping) if door is not None else launcher
    if first is not launcher and not stopping:
        name = "the front door (nginx)" if first is door else "the OIP gateway"
        print(f"{name} stopped on its own (exit status {first.returncode}); stopping torchserve",
              file=sys.stderr, flush=True)
        stop_frontends(gateway, door, door_stop_s)
        drain_server(launcher, signal.SIGTERM)
        launcher.wait()
        return first.returncode or 1
    if first is not launcher:
        drain_server(launcher, signal.SIGTERM)   # the front door has finished its requests: now TorchServe drains
    elif door is not None and stopping:
        stop_frontends(gateway, door, door_stop_s)   # the server went first: still give them their graceful stop
        drain_server(launcher, signal.SIGTERM)
    status = launcher.wait()
    stop_frontends(gateway, door, door_stop_s)
    return exit_status(status, stopping)


def exit_status(status: int, stopping: bool) -> int:
    """0 for a server that stopped because it was told to; its own status (never 0) otherwise."""
    if stopping:
        return 0 if status in (0, -signal.SIGTERM, 128 + signal.SIGTERM, 143) else status
    print(f"torchserve stopped on its own (exit status {status}); see the log above",
          file=sys.stderr, flush=True)
    return status or 1


if __name__ == "__main__":
    sys.exit(main())
