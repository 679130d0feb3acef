"""The real handlers on the built archives speaking the Open Inference Protocol (v2), in process
with TorchServe's own Context: requests built by tritonclient, answers read by tritonclient, every
instance's answer equal to the /predictions answer for the same input."""
from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from tritonclient.http import InferInput, InferRequestedOutput, InferResult
from tritonclient.http._utils import _get_inference_request

from handlers.oip_contract import BINARY_CONTENT_TYPE, HEADER_LENGTH_HEADER, JSON_CONTENT_TYPE
from stackctl.catalog.inprocess import InProcessModel, Request, Response
from tests.hostile import digit_label
from tests.imagegen import digit_image, encode, held_out
from tests.oip_hostile import CASES, V2, cases_for

TEXTS = ["bonjour tout le monde", "guten morgen zusammen", "buenos días a todos", "the quick brown fox",
         "buongiorno a tutti voi", "obrigado pela ajuda", "dankjewel voor alles", "Straßenbahnhaltestelle"]
INPUT = {"digits": "image", "langid": "text"}


def images(count: int) -> list[bytes]:
    return [encode(digit_image(img, size, "L", dark), fmt) for (img, _), size, dark, fmt
            in zip(held_out(count, seed=11), (8, 28, 64, 100, 16, 32, 48, 20), (0, 1) * 4, ("PNG", "JPEG") * 4)]


def instances(model: str, count: int) -> list[bytes]:
    return images(count) if model == "digits" else [t.encode() for t in TEXTS[:count]]


def predictions_request(model: str, value: bytes) -> Request:
    """The same input as a /predictions body (raw image bytes, or JSON text)."""
    if model == "digits":
        return Request(value, "image/png")
    return Request(json.dumps({"text": value.decode()}).encode(), "application/json")


def oip_request(model: str, values: list[bytes], binary: bool, request_id: str = "", outputs: Any = None,
                shape: list[int] | None = None, parameters: dict | None = None) -> Request:
    """A v2 infer request exactly as tritonclient.http builds it (JSON BYTES: base64 for images)."""
    data = values if binary or model == "langid" else [base64.b64encode(v) for v in values]
    tensor = InferInput(INPUT[model], shape or [len(values)], "BYTES")
    tensor.set_data_from_numpy(np.array(data, dtype=np.object_).reshape(shape or [len(values)]), binary_data=binary)
    body, header_length = _get_inference_request([tensor], request_id, outputs, 0, False, False, 0, None, parameters)
    headers = dict(V2) if header_length is None else {**V2, HEADER_LENGTH_HEADER: str(header_length)}
    return Request(body, None, headers)


def read(response: Response) -> InferResult:
    """The response as tritonclient.http reads it."""
    assert response.status == 200, response.body
    length = response.headers.get(HEADER_LENGTH_HEADER)
    return InferResult.from_response_body(response.body, header_length=int(length) if length else None)


def text(label: bytes | str) -> str:
    """A BYTES element as tritonclient gives it: bytes from binary data, str from JSON."""
    return label.decode() if isinstance(label, bytes) else label


def assert_equal_answers(result: InferResult, singles: list[tuple[int, dict]], k: int = 3) -> None:
    labels, probabilities = result.as_numpy("label"), result.as_numpy("probability")
    assert labels.shape == probabilities.shape == (len(singles), k)
    assert probabilities.dtype == np.float32
    for row_labels, row_p, (status, single) in zip(labels, probabilities, singles):
        assert status == 200
        assert [text(label) for label in row_labels] == [r["label"] for r in single["top_k"][:k]]
        assert np.allclose(row_p, [r["probability"] for r in single["top_k"][:k]], atol=1e-5)


def singles(model: InProcessModel, name: str, values: list[bytes]) -> list[tuple[int, dict]]:
    return [model.predict([predictions_request(name, v)])[0] for v in values]


@pytest.fixture(scope="module")
def models(digits: InProcessModel, langid: InProcessModel) -> dict[str, InProcessModel]:
    return {"digits": digits, "langid": langid}


@pytest.mark.parametrize("model", ["digits", "langid"])
@pytest.mark.parametrize("count", [1, 8])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_v2_answers_equal_the_predictions_answers(models, model: str, count: int, binary: bool) -> None:
    values = instances(model, count)
    outputs = [InferRequestedOutput(name, binary_data=binary) for name in ("label", "probability")]
    response, = models[model].respond([oip_request(model, values, binary, "req-42", outputs)])
    assert response.headers["content-type"] == (BINARY_CONTENT_TYPE if binary else JSON_CONTENT_TYPE)
    assert (HEADER_LENGTH_HEADER in response.headers) == binary
    result = read(response)
    assert result.get_response()["id"] == "req-42"
    assert result.get_response()["model_name"] == model and result.get_response()["model_version"] == "1.0"
    assert_equal_answers(result, singles(models[model], model, values))


def test_tritonclient_defaults_binary_outputs_and_shape_n_by_1(models) -> None:
    values = instances("digits", 3)
    response, = models["digits"].respond([oip_request("digits", values, True, shape=[3, 1])])
    assert response.headers["content-type"] == BINARY_CONTENT_TYPE  # no outputs named: binary_data_output
    result = read(response)
    assert "id" not in result.get_response()
    assert_equal_answers(result, singles(models["digits"], "digits", values))
    assert text(result.as_numpy("label")[0][0]) == singles(models["digits"], "digits", values[:1])[0][1]["top_k"][0]["label"]


def test_top_k_and_the_outputs_asked_for(models) -> None:
    values = instances("langid", 2)
    outputs = [InferRequestedOutput("probability", binary_data=False), InferRequestedOutput("label", binary_data=True)]
    response, = models["langid"].respond([oip_request("langid", values, False, outputs=outputs,
                                                      parameters={"top_k": 1})])
    result = read(response)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probability", "label"]
    assert_equal_answers(result, singles(models["langid"], "langid", values), k=1)
    only, = models["langid"].respond([oip_request("langid", values, False, outputs=[InferRequestedOutput("label")])])
    assert [o["name"] for o in read(only).get_response()["outputs"]] == ["label"]


def test_a_batch_mixing_v2_and_predictions_with_one_bad_instance(models) -> None:
    """Only the request holding the bad instance gets 400 (naming it); every other request of the
    same TorchServe batch, v2 or /predictions, gets exactly its single answer."""
    good = images(8)
    batch = [oip_request("digits", good[:4], True), predictions_request("digits", good[4]),
             oip_request("digits", [good[5], b"not an image", good[6]], True), oip_request("digits", good[6:8], False),
             predictions_request("digits", good[7])]
    answers = models["digits"].respond(batch)
    assert [a.status for a in answers] == [200, 200, 400, 200, 200]
    assert answers[2].headers["content-type"] == JSON_CONTENT_TYPE
    assert json.loads(answers[2].body)["error"].startswith("instance 1: invalid_image: ")
    alone = singles(models["digits"], "digits", good)
    assert_equal_answers(read(answers[0]), alone[:4])
    assert answers[1].body == alone[4][1] and answers[4].body == alone[7][1]
    assert_equal_answers(read(answers[3]), alone[6:8])
    assert answers[0].body and text(read(answers[0]).as_numpy("label")[0][0]) == alone[0][1]["top_k"][0]["label"]


def test_a_digit_over_v2_gets_its_label(models) -> None:
    from tests.hostile import digit

    result = read(models["digits"].respond([oip_request("digits", [digit()], False)])[0])
    assert text(result.as_numpy("label")[0][0]) == digit_label()


@pytest.mark.parametrize("model", ["digits", "langid"])
def test_every_hostile_v2_request_gets_400_with_its_message_in_one_batch(models, model: str) -> None:
    """All hostile v2 cases of a model in ONE batch, a valid v2 request between each: each case
    gets its own 400 in the v2 error shape, the valid ones their 200."""
    valid = oip_request(model, instances(model, 2), True)
    batch = [item for case in cases_for(model) for item in (Request(case.request()[0], None, case.request()[1]), valid)]
    answers = models[model].respond(batch)
    for case, answer in zip(cases_for(model), answers[::2]):
        assert answer.status == case.status, (case.id, answer.body)
        assert answer.headers["content-type"] == JSON_CONTENT_TYPE
        error = json.loads(answer.body)
        assert list(error) == ["error"] and error["error"].startswith(case.message), (case.id, error)
    assert all(answer.status == 200 for answer in answers[1::2])


def test_the_case_table_covers_both_models() -> None:
    assert {case.model for case in CASES} == {"digits", "langid"}
    assert len({case.id for case in CASES}) == len(CASES) // 2


def test_predictions_requests_never_speak_v2(models) -> None:
    """Without the front door's header a v2-shaped body is a /predictions body like any other."""
    body = oip_request("langid", [b"bonjour"], False).body
    status, answer = models["langid"].predict([Request(body, "application/json")])[0]
    assert status == 400 and answer["error"]["type"] == "invalid_request"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("binary", [True, False])
def test_a_compressed_request_answers_as_the_plain_one(models, encoding: str, binary: bool) -> None:
    """Content-Encoding as tritonclient.http's request_compression_algorithm sends it: the body
    compressed whole, Inference-Header-Content-Length still the uncompressed header's length."""
    import gzip
    import zlib

    values = instances("digits", 3)
    plain = oip_request("digits", values, binary)
    body = gzip.compress(plain.body) if encoding == "gzip" else zlib.compress(plain.body)
    squeezed = Request(body, None, {**plain.headers, "Content-Encoding": encoding})
    answers = models["digits"].respond([squeezed, plain])
    assert [a.status for a in answers] == [200, 200] and answers[0].body == answers[1].body
    assert_equal_answers(read(answers[0]), singles(models["digits"], "digits", values))
