"""The Open Inference Protocol on the compose stack (the session's, tests/live/compose_stack.py),
with clients we did not write: tritonclient.http on the published inference port,
tritonclient.grpc on the published gRPC port (7070 in the container: the OIP gateway), the KServe
SDK's REST client. Health, metadata and infer on digits and langid with 1 and 8 instances, JSON
and binary, each answer equal to /predictions; and the 32-request mixed batch with one bad
instance. The same calls and checks as the native suite (tests/oip_calls.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.live.compose_stack import Stack
from tests.oip_calls import (
    KSERVE_PYTHON,
    check_grpc_infer,
    check_grpc_metadata,
    check_kserve_sdk,
    check_mixed_batch,
    check_rest_infer,
    check_rest_metadata,
    host_port,
)

MODELS = {"digits": "image", "langid": "text"}


@pytest.fixture(scope="module")
def inference(compose_stack: Stack) -> str:
    # Up again if an earlier module stopped it (a no-op while it runs): this module needs it serving.
    compose_stack.compose("up", "torchserve")
    return compose_stack.url("torchserve", 8080)


@pytest.fixture(scope="module")
def rest(inference: str) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(host_port(inference), network_timeout=60)


@pytest.fixture(scope="module")
def grpc(compose_stack: Stack, inference: str) -> grpcclient.InferenceServerClient:
    address = compose_stack.port("torchserve", 7070)
    assert address.startswith("127.0.0.1:"), f"gRPC is published like inference, on loopback by default: {address}"
    return grpcclient.InferenceServerClient(address)


@pytest.mark.parametrize("model", list(MODELS))
def test_health_and_metadata_over_rest_and_grpc(rest, grpc, model: str) -> None:
    assert check_rest_metadata(rest, model, MODELS[model])["versions"] == ["1.0"]
    check_grpc_metadata(grpc, rest, model)


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("count", [1, 8])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_rest_infer_equals_predictions(inference, rest, model: str, count: int, binary: bool) -> None:
    check_rest_infer(rest, inference, model, MODELS[model], count, binary)


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("count", [1, 8])
def test_grpc_infer_equals_predictions(inference, grpc, model: str, count: int) -> None:
    check_grpc_infer(grpc, inference, model, MODELS[model], count)


@pytest.mark.skipif(not KSERVE_PYTHON.is_file(), reason="the KServe SDK venv is missing: `make kserve-client`")
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("count", [1, 8])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_kserve_sdk_rest_client(inference, model: str, count: int, binary: bool, tmp_path: Path) -> None:
    check_kserve_sdk(inference, model, MODELS[model], count, binary, tmp_path)


def test_32_concurrent_v2_and_predictions_requests_with_one_bad_instance(inference) -> None:
    check_mixed_batch(inference)
