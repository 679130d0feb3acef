"""The image's entry point (stackctl.serve.container) with the OIP gateway: started beside the front
door when OIP_GRPC_ADDRESS is set (the image sets 0.0.0.0:7070), answering gRPC and, through the
door, GET /v2; a gateway that stops on its own is a failure; SIGTERM stops everything cleanly.
Real nginx, real gateway; a stand-in server (the JVM drain is measured live)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import requests
import tritonclient.grpc as grpcclient

from stackctl import paths
from stackctl.serve import container, oip_launch
from stackctl.serve.native import free_port
from tests.unit.test_front_door import needs_nginx

SLEEPING_SERVER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _entry(tmp_path) -> tuple[subprocess.Popen, str, str]:
    door, grpc = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(paths.ROOT), "TMPDIR": str(tmp_path), container.FRONT_DOOR: "on",
           "TS_INFERENCE_ADDRESS": f"http://127.0.0.1:{door}", container.UPSTREAM_PORT: str(free_port()),
           oip_launch.GRPC_ADDRESS: f"127.0.0.1:{grpc}", oip_launch.REST_PORT: str(free_port())}
    entry = subprocess.Popen([sys.executable, "-m", "stackctl.serve.container", *SLEEPING_SERVER],
                             cwd=paths.ROOT, env=env)
    return entry, f"http://127.0.0.1:{door}", f"127.0.0.1:{grpc}"


def _wait_for_metadata(entry: subprocess.Popen, door_url: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        assert entry.poll() is None, entry.returncode
        try:
            answer = requests.get(f"{door_url}/v2", timeout=2)
            if answer.status_code == 200:
                return answer.json()
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "no OIP server metadata through the front door within 30 s"
        time.sleep(0.1)


def _gateway(entry: subprocess.Popen) -> container.psutil.Process:
    return next(p for p in container.psutil.Process(entry.pid).children()
                if "stackctl.serve.oip_gateway" in " ".join(p.cmdline()))


@needs_nginx
def test_the_gateway_answers_and_sigterm_stops_it_with_the_rest(tmp_path) -> None:
    entry, door_url, grpc_address = _entry(tmp_path)
    try:
        assert "binary_tensor_data" in _wait_for_metadata(entry, door_url)["extensions"]
        assert grpcclient.InferenceServerClient(grpc_address).get_server_metadata().name == "torchserve-stack"
        gateway = _gateway(entry)
        entry.terminate()
        assert entry.wait(timeout=60) == 0
        assert not gateway.is_running() or gateway.status() == container.psutil.STATUS_ZOMBIE
    finally:
        if entry.poll() is None:
            entry.kill()
            entry.wait()


@needs_nginx
def test_a_gateway_that_exits_on_its_own_stops_everything_and_fails(tmp_path) -> None:
    entry, door_url, _ = _entry(tmp_path)
    try:
        _wait_for_metadata(entry, door_url)
        _gateway(entry).kill()
        assert entry.wait(timeout=60) != 0
    finally:
        if entry.poll() is None:
            entry.kill()
            entry.wait()
