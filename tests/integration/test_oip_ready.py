"""OIP ready means what stackctl.serve.readiness means: a model is ready while it has a READY worker,
and the server while every model is. A stack of its own (the session's keeps its workers): one
model scaled to 0 workers through the management API makes the server and that model not ready,
over REST and gRPC, while the other model stays ready; its v2 requests get 503 in the OIP shape.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import tritonclient.grpc as grpcclient

from stackctl.serve import readiness
from stackctl.serve.native import NativeStack, Ports
from tests.native_server import serve_until_ready


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    own = NativeStack(run_dir=tmp_path_factory.mktemp("oip-ready"), ports=Ports.free())
    try:
        yield serve_until_ready(own)
    finally:
        own.stop_all()


def _scale(stack: NativeStack, model: str, workers: int) -> None:
    answer = requests.put(f"{stack.management_url}/models/{model}",
                          params={"min_worker": workers, "max_worker": workers, "synchronous": "true"}, timeout=60)
    assert answer.status_code == 200, answer.text


def test_a_model_without_workers_makes_the_server_not_ready(stack: NativeStack) -> None:
    v2 = f"{stack.inference_url}/v2"
    client = grpcclient.InferenceServerClient(stack.oip_grpc_address)
    assert requests.get(f"{v2}/health/ready", timeout=10).status_code == 200 and client.is_server_ready()
    _scale(stack, "digits", 0)
    assert readiness.model_status(stack.management_url)["digits"] == []
    assert requests.get(f"{v2}/health/ready", timeout=10).status_code == 503
    assert requests.get(f"{v2}/models/digits/ready", timeout=10).status_code == 503
    assert requests.get(f"{v2}/models/langid/ready", timeout=10).status_code == 200
    assert requests.get(f"{v2}/health/live", timeout=10).status_code == 200, "live: the server still answers"
    assert not client.is_server_ready() and not client.is_model_ready("digits") and client.is_model_ready("langid")
    answer = requests.post(f"{v2}/models/digits/infer", timeout=30, json={
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": ["aGVsbG8="]}]})
    assert answer.status_code == 503
    assert answer.json()["error"].startswith("model_unavailable: model digits cannot take this request now")
    _scale(stack, "digits", 1)
    readiness.wait_until_ready(stack.management_url, timeout=120)
    assert requests.get(f"{v2}/health/ready", timeout=10).status_code == 200 and client.is_server_ready()
