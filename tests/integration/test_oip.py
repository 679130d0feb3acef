"""The Open Inference Protocol (v2) against a real native stack, with clients we did not write:
tritonclient.http through the front door, tritonclient.grpc through the OIP gateway, and the KServe
SDK's REST client (its own venv: tests/clients/kserve_call.py). Health, metadata and ready on
digits and langid; unknown models and versions; infer with 1 and 8 instances, JSON and binary,
each answer equal to the single /predictions answer for that item.
"""
from __future__ import annotations

import base64
import functools
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from models.langid import held_out_texts
from stackctl import paths
from tests.imagegen import digit_image, encode, held_out

MODELS = {"digits": "image", "langid": "text"}
KSERVE_PYTHON = Path(os.environ.get("KSERVE_VENV", paths.ROOT / ".venv-kserve")) / "bin" / "python"
KSERVE_CALL = paths.ROOT / "tests" / "clients" / "kserve_call.py"


def _host_port(url: str) -> str:
    return url.split("://", 1)[1]


@pytest.fixture(scope="module")
def rest(torchserve) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(_host_port(torchserve.inference_url), network_timeout=60)


@pytest.fixture(scope="module")
def grpc(torchserve) -> grpcclient.InferenceServerClient:
    address = getattr(torchserve, "oip_grpc_address", None)
    if address is None:
        pytest.skip("this server has no OIP gateway address (a container attached by TORCHSERVE_CONTAINER)")
    return grpcclient.InferenceServerClient(address)


@functools.cache
def _texts() -> list[bytes]:
    """Held-out langid samples: built once (~15 s of reading word lists)."""
    return [text.encode() for text, _ in held_out_texts()[:8]]


def instances(model: str, count: int) -> list[bytes]:
    if model == "digits":
        return [encode(digit_image(img, 28 + 8 * i, "L", i % 2 == 0), "PNG")
                for i, (img, _) in enumerate(held_out(count, seed=21))]
    return _texts()[:count]


def single_answers(torchserve, model: str, values: list[bytes]) -> list[dict]:
    url = f"{torchserve.inference_url}/predictions/{model}"
    answers = []
    for value in values:
        response = (requests.post(url, data=value, headers={"Content-Type": "image/png"}, timeout=60)
                    if model == "digits" else requests.post(url, json={"text": value.decode()}, timeout=60))
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def assert_equal_answers(labels: np.ndarray, probabilities: np.ndarray, singles: list[dict], k: int = 3) -> None:
    assert labels.shape == probabilities.shape == (len(singles), k)
    for row_labels, row_p, single in zip(labels, probabilities, singles):
        assert [lb.decode() if isinstance(lb, bytes) else lb for lb in row_labels] == \
            [r["label"] for r in single["top_k"][:k]]
        assert np.allclose(row_p, [r["probability"] for r in single["top_k"][:k]], atol=1e-5)


def _element(model: str, value: bytes, binary: bool) -> object:
    """A BYTES element as a client sends it: the bytes (binary), else a string (JSON: the text, or
    the image's base64)."""
    if binary:
        return value
    return base64.b64encode(value).decode() if model == "digits" else value.decode()


# --- health, metadata, ready -------------------------------------------------------------------

def test_rest_health_metadata_and_ready(rest) -> None:
    assert rest.is_server_live() and rest.is_server_ready()
    assert "binary_tensor_data" in rest.get_server_metadata()["extensions"]
    for model, kind in MODELS.items():
        meta = rest.get_model_metadata(model)
        assert meta["name"] == model and meta["versions"] == ["1.0"]
        assert meta["inputs"] == [{"name": kind, "datatype": "BYTES", "shape": [-1]}]
        assert meta["outputs"] == [{"name": "label", "datatype": "BYTES", "shape": [-1, 3]},
                                   {"name": "probability", "datatype": "FP32", "shape": [-1, 3]}]
        assert rest.get_model_metadata(model, "1.0") == meta
        assert rest.is_model_ready(model) and rest.is_model_ready(model, "1.0")


def test_grpc_health_metadata_and_ready(grpc, rest) -> None:
    assert grpc.is_server_live() and grpc.is_server_ready()
    assert grpc.get_server_metadata(as_json=True) == {**rest.get_server_metadata()}
    for model in MODELS:
        meta = grpc.get_model_metadata(model, as_json=True)
        expected = rest.get_model_metadata(model)
        assert meta["name"] == model and meta["versions"] == expected["versions"]
        # protobuf's JSON writes int64 shapes as strings.
        assert [{**t, "shape": [int(d) for d in t["shape"]]} for t in meta["inputs"]] == expected["inputs"]
        assert [{**t, "shape": [int(d) for d in t["shape"]]} for t in meta["outputs"]] == expected["outputs"]
        assert grpc.is_model_ready(model) and grpc.is_model_ready(model, "1.0")


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
                 lambda: grpc.infer("nope", [_grpc_input("langid", [b"hallo"])])):
        with pytest.raises(InferenceServerException) as raised:
            call()
        assert raised.value.status() == "StatusCode.NOT_FOUND", raised.value


# --- infer -------------------------------------------------------------------------------------

def _grpc_input(model: str, values: list[bytes]) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(MODELS[model], [len(values)], "BYTES")
    tensor.set_data_from_numpy(np.array(values, dtype=np.object_))
    return tensor


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("count", [1, 8])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_rest_infer_equals_predictions(torchserve, rest, model: str, count: int, binary: bool) -> None:
    values = instances(model, count)
    tensor = httpclient.InferInput(MODELS[model], [count], "BYTES")
    tensor.set_data_from_numpy(np.array([_element(model, v, binary) for v in values], dtype=np.object_),
                               binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in ("label", "probability")]
    result = rest.infer(model, [tensor], outputs=outputs, request_id=f"r-{count}")
    assert result.get_response()["id"] == f"r-{count}"
    assert_equal_answers(result.as_numpy("label"), result.as_numpy("probability"),
                         single_answers(torchserve, model, values))


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("count", [1, 8])
def test_grpc_infer_equals_predictions(torchserve, grpc, model: str, count: int) -> None:
    values = instances(model, count)
    result = grpc.infer(model, [_grpc_input(model, values)], request_id="g-1", model_version="1.0")
    assert result.get_response().id == "g-1"
    assert_equal_answers(result.as_numpy("label"), result.as_numpy("probability"),
                         single_answers(torchserve, model, values))


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
    values = instances(model, count)
    files = []
    for i, value in enumerate(values):
        files.append(tmp_path / f"{i}.bin")
        files[-1].write_bytes(value)
    done = subprocess.run([str(KSERVE_PYTHON), str(KSERVE_CALL), torchserve.inference_url, model, MODELS[model],
                           *(["--binary"] if binary else []), *map(str, files)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["live"] and answer["ready"] and answer["model_ready"]
    assert_equal_answers(np.array(answer["label"], dtype=np.object_), np.array(answer["probability"]),
                         single_answers(torchserve, model, values))
