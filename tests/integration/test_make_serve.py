"""The user's entry point: `stackctl serve` (what `make serve` runs) twice, `status`, then `stop`."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import requests

from stackctl import paths
from stackctl.catalog.specs import get_spec
from stackctl.serve.native import Ports


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stackctl", *args], cwd=paths.ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_serve_is_ready_when_it_returns_rerun_is_harmless_and_stop_stops(tmp_path: Path) -> None:
    ports = Ports.free()
    env = dict(os.environ, STACK_RUN_DIR=str(tmp_path / "run"), INFERENCE_PORT=str(ports.inference),
               MANAGEMENT_PORT=str(ports.management), METRICS_PORT=str(ports.metrics),
               PROMETHEUS_PORT=str(ports.prometheus), WORKER_PORT_BASE=str(ports.worker_base),
               GRPC_PORT=str(ports.oip_grpc))
    try:
        first = _cli("serve", env=env)
        assert first.returncode == 0, first.stdout + first.stderr
        # Ready once every model has a READY worker; more may still be starting (minWorkers > 1).
        ready = re.search(r"Ready: digits \((\d+) READY\), langid \((\d+) READY\)", first.stdout)
        assert ready, first.stdout
        for name, count in zip(("digits", "langid"), ready.groups()):
            assert 1 <= int(count) <= get_spec(name).serving.min_workers
        assert f"http://127.0.0.1:{ports.inference}/predictions/<model>" in first.stdout
        assert f"OIP gRPC    127.0.0.1:{ports.oip_grpc}" in first.stdout
        # ready means ready: the first request after `serve` returns is answered
        answer = requests.post(f"http://127.0.0.1:{ports.inference}/predictions/langid", json={"text": "ciao"}, timeout=30)
        assert answer.status_code == 200
        assert requests.get(f"http://127.0.0.1:{ports.prometheus}/-/ready", timeout=5).status_code == 200

        again = _cli("serve", env=env)
        assert again.returncode == 0, again.stderr
        assert "already running and ready" in again.stdout and "Prometheus is already running" in again.stdout

        status = _cli("status", env=env)
        assert "digits     workers: READY" in status.stdout and "prometheus  running" in status.stdout
    finally:
        stopped = _cli("stop", env=env)
    assert "torchserve" in stopped.stdout and "prometheus" in stopped.stdout and "oip-gateway" in stopped.stdout
    for port in (ports.inference, ports.prometheus, ports.oip_grpc):
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            raise AssertionError(f"port {port} still answers after stop")
        except requests.ConnectionError:
            pass
