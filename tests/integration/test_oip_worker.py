"""The v2 handler side on a real TorchServe, without the front door: the client sets
`X-Inference-Protocol: v2` itself (what the door does on its /v2 infer locations), so this checks
what only a real server shows: TorchServe hands the worker the request headers
(`Inference-Header-Content-Length`), sends back the ones the handler sets, and batches v2 and
/predictions requests together, each answered on its own.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

from handlers.oip_contract import HEADER_LENGTH_HEADER, PROTOCOL_HEADER, PROTOCOL_VALUE
from stackctl.serve.native import NativeStack, Ports
from tests.imagegen import digit_image, encode, held_out
from tests.native_server import serve_until_ready
from tests.oip_calls import check_mixed_batch

V2 = {PROTOCOL_HEADER: PROTOCOL_VALUE}
TEXTS = ["bonjour tout le monde", "guten morgen zusammen", "buenos días a todos", "the quick brown fox",
         "buongiorno a tutti voi", "obrigado pela ajuda", "dankjewel voor alles", "Straßenbahnhaltestelle"]
INPUT = {"digits": "image", "langid": "text"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    stack = NativeStack(run_dir=Path(tmp_path_factory.mktemp("oip-worker")), ports=Ports.free(), front_door=False)
    try:
        yield serve_until_ready(stack)
    finally:
        stack.stop_all()


def instances(model: str, count: int) -> list[bytes]:
    if model == "langid":
        return [t.encode() for t in TEXTS[:count]]
    return [encode(digit_image(img, 28, "L", True), "PNG") for img, _ in held_out(count, seed=21)]


def single(url: str, model: str, value: bytes) -> list[dict]:
    if model == "digits":
        response = requests.post(f"{url}/predictions/{model}", data=value, headers={"Content-Type": "image/png"})
    else:
        response = requests.post(f"{url}/predictions/{model}", json={"text": value.decode()})
    assert response.status_code == 200, response.text
    return response.json()["top_k"]


def v2_input(model: str, values: list[bytes], binary: bool) -> httpclient.InferInput:
    data = values if binary or model == "langid" else [base64.b64encode(v) for v in values]
    tensor = httpclient.InferInput(INPUT[model], [len(values)], "BYTES")
    tensor.set_data_from_numpy(np.array(data, dtype=np.object_), binary_data=binary)
    return tensor


@pytest.mark.parametrize("model", ["digits", "langid"])
@pytest.mark.parametrize("count", [1, 8])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_through_torchserve_gets_the_predictions_answers(server, model: str, count: int,
                                                                      binary: bool) -> None:
    values = instances(model, count)
    client = httpclient.InferenceServerClient(server.inference_url.split("//", 1)[1])
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in ("label", "probability")]
    result = client.infer(model, [v2_input(model, values, binary)], outputs=outputs, request_id="r-7",
                          headers=dict(V2))  # tritonclient adds its own headers to the dict it is given
    assert result.get_response()["id"] == "r-7" and result.get_response()["model_name"] == model
    labels, probabilities = result.as_numpy("label"), result.as_numpy("probability")
    for row_labels, row_p, value in zip(labels, probabilities, values):
        expected = single(server.inference_url, model, value)
        assert [x.decode() if isinstance(x, bytes) else x for x in row_labels] == [r["label"] for r in expected]
        assert np.allclose(row_p, [r["probability"] for r in expected], atol=1e-5)


def test_the_response_headers_reach_the_client(server) -> None:
    tensor = v2_input("langid", instances("langid", 2), True)
    body, length = httpclient._utils._get_inference_request([tensor], "", None, 0, False, False, 0, None, None)
    response = requests.post(f"{server.inference_url}/predictions/langid", data=body,
                             headers={**V2, HEADER_LENGTH_HEADER: str(length)})
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/octet-stream"
    header_length = int(response.headers[HEADER_LENGTH_HEADER])
    assert json.loads(response.content[:header_length])["outputs"][0]["parameters"]["binary_data_size"] > 0


def test_32_concurrent_v2_and_predictions_requests_with_one_bad_instance(server) -> None:
    """Only the request with the bad instance gets 400 (naming it); the 31 others, batched with it
    by TorchServe, equal their single answers (tests/oip_calls.py; test_oip.py sends the same
    through the front door)."""
    check_mixed_batch(server.inference_url, V2)
