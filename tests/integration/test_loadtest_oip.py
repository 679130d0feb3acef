"""The load test speaks the Open Inference Protocol (issue 25): short plain-Locust runs against the
real stack (the session `torchserve` fixture), once over REST (POST /v2/models/<m>/infer, binary
tensor data, 8 instances per request) and once over the OIP gateway's gRPC (tritonclient.grpc
under gevent). Every answer is checked by the users themselves (shape [8, k] of both outputs), so
zero failures means every request came back whole; the gate prints items/s beside req/s.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from stackctl.catalog.specs import load_specs
from stackctl.serve import readiness
from tests.tool_runs import LATENCY_ANY, rows, run

# A streaming model's users send /predictions chunks whatever the protocol (loadtest/users.py, StreamUser).
MODELS = sorted(spec.name for spec in load_specs() if spec.sequence is None)
INSTANCES = 8
USERS = len(load_specs())  # one per model (equal weights), so the gate sees every model exercised


def locust(host: str, out: Path, *options: str) -> tuple[str, dict[str, dict[str, str]]]:
    proc = run(["-m", "locust", "-f", "loadtest/locustfile.py", "--config", "loadtest/locust.conf", "--headless",
                "--host", host, "--users", str(USERS), "--spawn-rate", str(USERS), "--run-time", "5s",
                "--instances", str(INSTANCES), "--slo-override", LATENCY_ANY, "--csv", str(out / "run"), *options],
               timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, {r["Name"]: r for r in rows(out / "run_stats.csv")}


def check(stdout: str, stats: dict[str, dict[str, str]], method: str) -> None:
    for model in MODELS:
        assert stats[model]["Type"] == method
        assert int(stats[model]["Request Count"]) > 0 and int(stats[model]["Failure Count"]) == 0, stats[model]
        line = next(x for x in stdout.splitlines() if x.startswith(f"{model}: ") and "items/s" in x)
        assert f"({INSTANCES} instances per request)" in line
        assert float(line.split()[1]) > 0
    assert "SLO gate: every model within its SLO" in stdout


def test_oip_rest_users_send_binary_multi_instance_requests(torchserve, tmp_path):
    stdout, stats = locust(torchserve.inference_url, tmp_path, "--protocol", "oip")
    check(stdout, stats, "POST")


def test_oip_grpc_users_call_model_infer(torchserve, tmp_path):
    address = getattr(torchserve, "oip_grpc_address", None)
    if address is None:
        pytest.skip("this server has no OIP gateway address (a container attached by name)")
    # The gateway serves gRPC and the REST health routes from one process: ready there, ready here.
    readiness.wait_for_http(f"{torchserve.inference_url}/v2/health/ready", timeout=60)
    stdout, stats = locust(torchserve.inference_url, tmp_path, "--protocol", "oip-grpc", "--grpc-address", address)
    check(stdout, stats, "grpc")
