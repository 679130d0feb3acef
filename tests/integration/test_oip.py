"""The Open Inference Protocol (v2) against a real native stack, with clients we did not write:
tritonclient.http through the front door, tritonclient.grpc through the OIP gateway, and the KServe
SDK's REST client (its own venv: tests/clients/kserve_call.py). Health, metadata and ready on
digits and langid; unknown models and versions; infer with 1 and 8 instances, JSON and binary,
each answer equal to the single /predictions answer for that item; 32 concurrent v2 and
/predictions requests through the front door. The calls and checks: tests/oip_calls.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.oip_calls import (
    KSERVE_PYTHON,
    check_grpc_infer,
    check_grpc_metadata,
    check_kserve_sdk,
    check_mixed_batch,
    check_rest_infer,
    check_rest_metadata,
    grpc_input,
    host_port,
)

MODELS = {"digits": "image", "langid": "text"}


@pytest.fixture(scope="module")
def rest(torchserve) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(host_port(torchserve.inference_url), network_timeout=60)


@pytest.fixture(scope="module")
def grpc(torchserve) -> grpcclient.InferenceServerClient:
    address = getattr(torchserve, "oip_grpc_address", None)
    if address is None:
        pytest.skip("this server has no OIP gateway address (a container attached by TORCHSERVE_CONTAINER)")
    return grpcclient.InferenceServerClient(address)


# --- health, metadata, ready -------------------------------------------------------------------

def test_rest_health_metadata_and_ready(rest) -> None:
    for model, kind in MODELS.items():
        assert check_rest_metadata(rest, model, kind)["versions"] == ["1.0"]


def test_grpc_health_metadata_and_ready(grpc, rest) -> None:
    for model in MODELS:
        check_grpc_metadata(grpc, rest, model)


def test_unknown_models_and_versions_are_404_and_not_found(torchserve, rest, grpc) -> None:
    for model, version in (("nope", ""), ("digits", "9.9")):
        with pytest.raises(InferenceServerException) as raised:
            rest.get_model_metadata(model, version)
        assert raised.value.status() == "404", raised.value
        assert not rest.is_model_ready(model, version)   # tritonclient: ready is "answered 200"
    answer = requests.get(f"{torchserve.inference_url}/v2/models/digits/versions/9.9/ready", timeout=10)
    assert answer.json() == {"error": "model_version_not_found: model 'digits' has no version '9.9' (versions: 1.0)"}
    answer = requests.get(f"{torchserve.inference_url}/v2/models/nope", timeout=10)
    assert answer.status_code == 404 and answer.json()["error"].startswith("model_not_found: model 'nope'")
    answer = requests.post(f"{torchserve.inference_url}/v2/models/nope/infer", json={"inputs": []}, timeout=10)
    assert answer.status_code == 404 and answer.json()["error"].startswith("model_not_found: model 'nope'")
    for call in (lambda: grpc.get_model_metadata("nope"), lambda: grpc.is_model_ready("digits", "9.9"),
                 lambda: grpc.infer("nope", [grpc_input("text", [b"hallo"])])):
        with pytest.raises(InferenceServerException) as raised:
            call()
        assert raised.value.status() == "StatusCode.NOT_FOUND", raised.value


# --- infer -------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("count", [1, 8])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_rest_infer_equals_predictions(torchserve, rest, model: str, count: int, binary: bool) -> None:
    check_rest_infer(rest, torchserve.inference_url, model, MODELS[model], count, binary)


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("count", [1, 8])
def test_grpc_infer_equals_predictions(torchserve, grpc, model: str, count: int) -> None:
    check_grpc_infer(grpc, torchserve.inference_url, model, MODELS[model], count)


def test_32_concurrent_v2_and_predictions_requests_through_the_front_door(torchserve) -> None:
    """The mixed batch of tests/integration/test_oip_worker.py through the stack: the door sets the
    protocol header and rewrites the v2 paths; only the bad request gets 400."""
    check_mixed_batch(torchserve.inference_url)


def test_grpc_errors_carry_the_rest_code_and_text(torchserve, grpc) -> None:
    tensor = grpcclient.InferInput("wrong", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"x"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as raised:
        grpc.infer("langid", [tensor])
    assert raised.value.status() == "StatusCode.INVALID_ARGUMENT"
    rest_answer = requests.post(f"{torchserve.inference_url}/v2/models/langid/infer", timeout=10, json={
        "inputs": [{"name": "wrong", "datatype": "BYTES", "shape": [1], "data": ["x"]}]})
    assert rest_answer.status_code == 400 and rest_answer.json()["error"] == raised.value.message()


# --- the KServe SDK --------------------------------------------------------------------------------

@pytest.mark.skipif(not KSERVE_PYTHON.is_file(), reason="the KServe SDK venv is missing: `make kserve-client`")
@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("count", [1, 8])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_kserve_sdk_rest_client(torchserve, model: str, count: int, binary: bool, tmp_path: Path) -> None:
    check_kserve_sdk(torchserve.inference_url, model, MODELS[model], count, binary, tmp_path)
