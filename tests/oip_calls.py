"""Open Inference Protocol (v2) calls with clients we did not write, and the checks that their
answers equal `/predictions`: shared by the native suite (tests/integration/test_oip.py, the brought
model's tests/integration/test_oip_byo.py) and the compose one (tests/live/test_compose_oip.py).

    check_rest_infer(rest_client, inference_url, "digits", "image", count=8, binary=True)

`model` is the served name; `kind` the input tensor's name, "image" or "text" (handlers/oip_contract.py);
`k` the spec's top_k. tritonclient.http goes to the public inference port, tritonclient.grpc to the
OIP gateway's gRPC port, the KServe SDK's REST client (its own venv: tests/clients/kserve_call.py) to
the inference port.
"""
from __future__ import annotations

import base64
import functools
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from stackctl import paths
from tests.imagegen import digit_image, encode, held_out

# make exports KSERVE_VENV relative to the repository (".venv-kserve"), and the calls run in other
# working directories: anchor it at the root (an absolute KSERVE_VENV stays as it is).
KSERVE_PYTHON = paths.ROOT / os.environ.get("KSERVE_VENV", ".venv-kserve") / "bin" / "python"
KSERVE_CALL = paths.ROOT / "tests" / "clients" / "kserve_call.py"
OUTPUTS = ("label", "probability")


def host_port(url: str) -> str:
    return url.split("://", 1)[1]


@functools.cache
def _texts() -> tuple[bytes, ...]:
    """Held-out langid samples: built once (~15 s of reading word lists)."""
    from models.langid import held_out_texts

    return tuple(text.encode() for text, _ in held_out_texts()[:8])


def instances(kind: str, count: int) -> list[bytes]:
    """`count` distinct inputs: PNG digits of varied sizes and modes (any image model takes them), or
    held-out langid sentences."""
    if kind == "image":
        return [encode(digit_image(img, 28 + 8 * i, "L", i % 2 == 0), "PNG")
                for i, (img, _) in enumerate(held_out(count, seed=21))]
    return list(_texts()[:count])


def single_answer(url: str, model: str, kind: str, value: bytes) -> dict:
    """The `/predictions` answer for one item (url: the public inference URL)."""
    if kind == "image":
        response = requests.post(f"{url}/predictions/{model}", data=value, headers={"Content-Type": "image/png"},
                                 timeout=60)
    else:
        response = requests.post(f"{url}/predictions/{model}", json={"text": value.decode()}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def single_answers(url: str, model: str, kind: str, values: list[bytes]) -> list[dict]:
    return [single_answer(url, model, kind, value) for value in values]


def assert_equal_answers(labels: np.ndarray, probabilities: np.ndarray, singles: list[dict], k: int = 3) -> None:
    assert labels.shape == probabilities.shape == (len(singles), k)
    for row_labels, row_p, single in zip(labels, probabilities, singles):
        assert [lb.decode() if isinstance(lb, bytes) else lb for lb in row_labels] == \
            [r["label"] for r in single["top_k"][:k]]
        assert np.allclose(row_p, [r["probability"] for r in single["top_k"][:k]], atol=1e-5)


def element(kind: str, value: bytes, binary: bool) -> object:
    """A BYTES element as a client sends it: the bytes (binary), else a string (JSON: the text, or
    the image's base64)."""
    if binary:
        return value
    return base64.b64encode(value).decode() if kind == "image" else value.decode()


def grpc_input(kind: str, values: list[bytes]) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(kind, [len(values)], "BYTES")
    tensor.set_data_from_numpy(np.array(values, dtype=np.object_))
    return tensor


# --- the checks, one per client ------------------------------------------------------------------

def check_rest_metadata(rest: httpclient.InferenceServerClient, model: str, kind: str, k: int = 3,
                        version: str = "1.0") -> dict:
    """Server live and ready; the model's metadata (with and without its version) and readiness."""
    assert rest.is_server_live() and rest.is_server_ready()
    assert "binary_tensor_data" in rest.get_server_metadata()["extensions"]
    meta = rest.get_model_metadata(model)
    assert meta["name"] == model and version in meta["versions"]
    assert meta["inputs"] == [{"name": kind, "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "label", "datatype": "BYTES", "shape": [-1, k]},
                               {"name": "probability", "datatype": "FP32", "shape": [-1, k]}]
    assert rest.get_model_metadata(model, version) == meta
    assert rest.is_model_ready(model) and rest.is_model_ready(model, version)
    return meta


def check_grpc_metadata(grpc: grpcclient.InferenceServerClient, rest: httpclient.InferenceServerClient,
                        model: str, version: str = "1.0") -> None:
    """The gRPC service says what REST says: server metadata, model metadata, readiness."""
    assert grpc.is_server_live() and grpc.is_server_ready()
    assert grpc.get_server_metadata(as_json=True) == {**rest.get_server_metadata()}
    meta = grpc.get_model_metadata(model, as_json=True)
    expected = rest.get_model_metadata(model)
    assert meta["name"] == model and meta["versions"] == expected["versions"]
    # protobuf's JSON writes int64 shapes as strings.
    assert [{**t, "shape": [int(d) for d in t["shape"]]} for t in meta["inputs"]] == expected["inputs"]
    assert [{**t, "shape": [int(d) for d in t["shape"]]} for t in meta["outputs"]] == expected["outputs"]
    assert grpc.is_model_ready(model) and grpc.is_model_ready(model, version)


def rest_input(kind: str, values: list[bytes], binary: bool) -> httpclient.InferInput:
    tensor = httpclient.InferInput(kind, [len(values)], "BYTES")
    tensor.set_data_from_numpy(np.array([element(kind, v, binary) for v in values], dtype=np.object_),
                               binary_data=binary)
    return tensor


def check_rest_infer(rest: httpclient.InferenceServerClient, url: str, model: str, kind: str, count: int,
                     binary: bool, k: int = 3, headers: dict[str, str] | None = None,
                     compression: str | None = None) -> None:
    """tritonclient.http infer of `count` instances, JSON or binary in and out, equal to /predictions.
    `headers`: sent with the infer request (X-Inference-Protocol where no front door sets it);
    `compression`: tritonclient's request_compression_algorithm (and the response's, asked)."""
    values = instances(kind, count)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in OUTPUTS]
    # A copy: tritonclient adds its own headers to the dict it is given.
    result = rest.infer(model, [rest_input(kind, values, binary)], outputs=outputs, request_id=f"r-{count}",
                        headers=dict(headers) if headers else None, request_compression_algorithm=compression,
                        response_compression_algorithm=compression)
    assert result.get_response()["id"] == f"r-{count}" and result.get_response()["model_name"] == model
    assert_equal_answers(result.as_numpy("label"), result.as_numpy("probability"),
                         single_answers(url, model, kind, values), k)


def check_grpc_infer(grpc: grpcclient.InferenceServerClient, url: str, model: str, kind: str, count: int,
                     k: int = 3, version: str = "1.0") -> None:
    """tritonclient.grpc infer (raw_input_contents / raw_output_contents), equal to /predictions."""
    values = instances(kind, count)
    result = grpc.infer(model, [grpc_input(kind, values)], request_id="g-1", model_version=version)
    assert result.get_response().id == "g-1"
    assert_equal_answers(result.as_numpy("label"), result.as_numpy("probability"),
                         single_answers(url, model, kind, values), k)


def check_kserve_sdk(url: str, model: str, kind: str, count: int, binary: bool, folder: Path, k: int = 3) -> None:
    """The KServe SDK's REST client (health, model ready, infer) in its own venv, equal to /predictions."""
    values = instances(kind, count)
    files = []
    for i, value in enumerate(values):
        files.append(folder / f"{i}.bin")
        files[-1].write_bytes(value)
    done = subprocess.run([str(KSERVE_PYTHON), str(KSERVE_CALL), url, model, kind,
                           *(["--binary"] if binary else []), *map(str, files)],
                          capture_output=True, text=True, timeout=120, cwd=folder)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["live"] and answer["ready"] and answer["model_ready"] and answer["id"] == "kserve-1"
    assert_equal_answers(np.array(answer["label"], dtype=np.object_), np.array(answer["probability"]),
                         single_answers(url, model, kind, values), k)


# --- many requests at once ------------------------------------------------------------------------

def check_mixed_batch(url: str, headers: dict[str, str] | None = None, bad: int = 10) -> None:
    """32 concurrent digits requests, odd ones /predictions, even ones v2 of 3 instances each; request
    `bad`'s third instance is not an image. Only that request gets 400 (naming the instance); the 31
    others, batched with it by TorchServe (digits: batchSize 8), equal their single answers.
    `headers`: what a client without the front door must add (X-Inference-Protocol: v2)."""
    values = instances("image", 8)
    expected = [single_answer(url, "digits", "image", v)["top_k"] for v in values]

    def send(index: int) -> tuple[int, requests.Response]:
        if index % 2:
            return index, requests.post(f"{url}/predictions/digits", data=values[index % 8], timeout=120,
                                        headers={"Content-Type": "image/png"})
        chosen = [values[(index + j) % 8] for j in range(3)]
        if index == bad:
            chosen[2] = b"not an image"
        document = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [3],
                                "data": [base64.b64encode(v).decode() for v in chosen]}]}
        return index, requests.post(f"{url}/v2/models/digits/infer", json=document, headers=headers or {},
                                    timeout=120)

    with ThreadPoolExecutor(32) as pool:
        answers = dict(pool.map(send, range(32)))
    assert answers[bad].status_code == 400
    assert answers[bad].json()["error"].startswith("instance 2: invalid_image: ")
    for index, response in answers.items():
        if index == bad:
            continue
        assert response.status_code == 200, (index, response.text)
        if index % 2:
            got, want = response.json()["top_k"], expected[index % 8]
            labels, probabilities = [r["label"] for r in got], [r["probability"] for r in got]
        else:
            outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
            labels, probabilities = outputs["label"], outputs["probability"]
            want = [r for j in range(3) for r in expected[(index + j) % 8]]
        assert labels == [r["label"] for r in want], index
        assert np.allclose(probabilities, [r["probability"] for r in want], atol=1e-5), index
