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

from handlers.oip_contract import PROTOCOL_HEADER
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
    instances,
)
from tests.oip_hostile import compression_cases

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


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("compression", ["gzip", "deflate"])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_rest_infer_with_request_compression(torchserve, rest, model: str, compression: str, binary: bool) -> None:
    """tritonclient.http's request_compression_algorithm: the handler decodes the body
    (handlers/oip_encoding.py), the answers are the uncompressed request's."""
    check_rest_infer(rest, torchserve.inference_url, model, MODELS[model], 8, binary, compression=compression)


@pytest.mark.parametrize("case", compression_cases("digits"), ids=lambda case: case.id)
def test_compressed_bodies_that_do_not_decode_are_refused_through_the_front_door(torchserve, case) -> None:
    """The hostile compressed bodies (tests/oip_hostile.py) through nginx and TorchServe: a bomb
    of 8 kB passes the door's size limit and gets the handler's 413 for its decoded size."""
    body, headers = case.request()
    answer = requests.post(f"{torchserve.inference_url}/v2/models/digits/infer", data=body, timeout=30,
                           headers={k: v for k, v in headers.items() if k != PROTOCOL_HEADER})
    assert answer.status_code == case.status, answer.text
    assert list(answer.json()) == ["error"] and answer.json()["error"].startswith(case.message), answer.text


def test_large_v2_answers_are_gzipped_only_when_asked(torchserve, rest) -> None:
    """The front door compresses v2 answers over 1 kB for a client that asks (Accept-Encoding),
    tritonclient's response_compression_algorithm reads them; /predictions answers never are."""
    url, texts = torchserve.inference_url, [t.decode() for t in instances("text", 8)] * 4
    document = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}
    plain = requests.post(f"{url}/v2/models/langid/infer", json=document, timeout=30,
                          headers={"Accept-Encoding": "identity"})
    squeezed = requests.post(f"{url}/v2/models/langid/infer", json=document, timeout=30,
                             headers={"Accept-Encoding": "gzip"})
    assert plain.status_code == squeezed.status_code == 200 and len(plain.content) > 1024
    assert "Content-Encoding" not in plain.headers and squeezed.headers["Content-Encoding"] == "gzip"
    assert squeezed.json() == plain.json()
    single = requests.post(f"{url}/predictions/langid", json={"text": texts[0]}, timeout=30,
                           headers={"Accept-Encoding": "gzip"})
    assert single.status_code == 200 and "Content-Encoding" not in single.headers
    for binary in (False, True):
        check_rest_infer(rest, url, "digits", "image", 32, binary, compression="gzip")


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
