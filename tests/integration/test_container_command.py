"""The image's command line and health check, run natively: same command, same config.

docker/Dockerfile's CMD and HEALTHCHECK are read from the file (stackctl.deploy.dockerfile), /app is
translated to this checkout, and the only other differences are the ones a container gets from its
environment: TS_* addresses (free loopback ports here instead of 0.0.0.0 with fixed ports, and
the same for the port TorchServe's inference API moves to behind the front door) and a private
temp dir. A typo in either command, or a config the command cannot start with, fails here.
Stopping sends SIGTERM to the entry point alone, as tini does on `docker stop`; the entry point
(stackctl.serve.container) hands it to the JVM, and everything must be gone within the grace period.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from stackctl import paths
from stackctl.catalog.specs import load_specs
from stackctl.deploy import dockerfile
from stackctl.serve import container

ROOT = paths.ROOT
RUNTIME = dockerfile.stage("runtime")
CONTAINER_ROOT = dockerfile.stage("serving").last("WORKDIR").arguments   # /app
APIS = ("inference", "management", "metrics")
STOP_GRACE_S = 30                                          # docker-compose.yml stop_grace_period


def to_host(arg: str) -> str:
    """/app/... in the image is this checkout."""
    if arg == CONTAINER_ROOT or arg.startswith(CONTAINER_ROOT + "/"):
        return str(ROOT) + arg[len(CONTAINER_ROOT):]
    return arg


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in sorted(units, key=len, reverse=True):
        if duration.endswith(unit):
            return float(duration[: -len(unit)]) * units[unit]
    return float(duration)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def still_running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def native_environment(tmp_path):
    """The image's environment, moved onto this host: loopback ports, private temp and logs."""
    image_env = RUNTIME.env()
    # Inherited TS_* settings (TS_CONFIG_FILE would even replace --ts-config) are not the image's.
    env = {key: value for key, value in os.environ.items() if not key.startswith("TS_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = to_host(image_env["PYTHONPATH"])
    for key in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", container.FRONT_DOOR):
        env[key] = image_env[key]
    env[container.UPSTREAM_PORT] = str(free_port())
    ports = {api: free_port() for api in APIS}
    for api in APIS:
        container_address = image_env[f"TS_{api.upper()}_ADDRESS"]   # http://0.0.0.0:808x
        assert container_address.startswith("http://0.0.0.0:")
        env[f"TS_{api.upper()}_ADDRESS"] = f"http://127.0.0.1:{ports[api]}"
    # TorchServe always opens its gRPC ports too; keep them off any other server's.
    env["TS_GRPC_INFERENCE_PORT"] = str(free_port())
    env["TS_GRPC_MANAGEMENT_PORT"] = str(free_port())
    # The launcher's pid file (tempfile.gettempdir()) and the JVM's tmpdir (TEMP: unpacked .mar
    # files, worker sockets) are private, so another TorchServe on this host is no obstacle.
    # Short path: worker sockets are AF_UNIX (108-byte limit).
    private_tmp = Path(tempfile.mkdtemp(prefix="tsc-", dir="/tmp"))
    env["TMPDIR"] = env["TEMP"] = str(private_tmp)
    env["LOG_LOCATION"] = env["METRICS_LOCATION"] = str(tmp_path / "logs")
    try:
        yield env, ports
    finally:
        shutil.rmtree(private_tmp, ignore_errors=True)


def test_container_command_serves_every_model_and_passes_its_healthcheck(native_environment, tmp_path) -> None:
    env, ports = native_environment
    specs = load_specs()
    missing = [str(s.archive_path.relative_to(ROOT)) for s in specs if not s.archive_path.is_file()]
    assert not missing, f"{', '.join(missing)} missing: run `make models`"

    entrypoint = RUNTIME.exec_form("ENTRYPOINT")
    assert Path(entrypoint[0]).name == "tini" and entrypoint[1] == "--"
    # What tini runs: the entry point (python from this venv) with the image's CMD.
    command = [sys.executable if arg == "python" else arg for arg in entrypoint[2:]]
    command += [to_host(arg) for arg in RUNTIME.exec_form("CMD")]
    options, health = RUNTIME.healthcheck()
    health_url = f"http://127.0.0.1:{ports['management']}"
    assert health[-1] == "http://127.0.0.1:8081", "the health check asks the management API on loopback"
    health = [to_host(arg) for arg in health[:-1]] + [health_url]
    health_timeout = seconds(options["timeout"])

    def healthcheck() -> subprocess.CompletedProcess:
        return subprocess.run(health, cwd=ROOT, env=env, capture_output=True, text=True, timeout=health_timeout + 30)

    # Docker reads any non-zero exit as unhealthy, but only 1 means "ran, and found no server":
    # a typo in the command (argparse's 2, Python's 1 with a traceback) must not pass for that.
    before = healthcheck()
    assert before.returncode == 1 and "not ready" in before.stderr, (
        f"the health check should report `not ready` with no server running:\n{before.stderr}")

    log = tmp_path / "torchserve.out"
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=to_host(CONTAINER_ROOT), env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Docker counts failures only after --start-period; that is the budget here too.
        deadline = time.monotonic() + seconds(options["start-period"])
        while True:
            assert server.poll() is None, f"torchserve exited with {server.returncode}:\n{tail(log)}"
            started = time.monotonic()
            result = healthcheck()
            if result.returncode == 0:
                break
            assert time.monotonic() < deadline, f"not healthy within the start period:\n{result.stderr}\n{tail(log)}"
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))   # poll about once a second

        with urllib.request.urlopen(f"http://127.0.0.1:{ports['management']}/models", timeout=10) as answer:
            registered = {m["modelName"] for m in json.load(answer)["models"]}
        assert registered == {s.name for s in specs}

        request = urllib.request.Request(f"http://127.0.0.1:{ports['inference']}/predictions/langid",
                                         data=json.dumps({"text": "guten morgen"}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = json.load(answer)
        assert body["model"] == "langid" and body["top_k"][0]["label"] in {"german", "dutch", "english"}

        with urllib.request.urlopen(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=10) as answer:
            assert b"ts_inference_requests_total" in answer.read()

        # docker stop: SIGTERM to tini's child only, then everything must be gone in time.
        group = [psutil.Process(server.pid)] + psutil.Process(server.pid).children(recursive=True)
        assert any("java" in p.name() for p in group), "the launcher started no JVM"
        assert any("nginx" in p.name() for p in group), "the entry point started no front door"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=STOP_GRACE_S) == 0, "a stop that was asked for is a clean exit"
        _, alive = psutil.wait_procs(group, timeout=STOP_GRACE_S)
        alive = [p for p in alive if still_running(p)]
        assert not alive, f"still running {STOP_GRACE_S}s after SIGTERM: {[p.cmdline()[:3] for p in alive]}"
    finally:
        # Whatever happened above: nothing of this server's process group outlives the test.
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.wait(timeout=10)
