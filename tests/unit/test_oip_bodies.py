"""The load test's and the bench's OIP request bodies: tritonclient's own parser reads them back to
the model's single-item inputs, N instances each; the answer check. (No Locust import here: it
would monkey-patch this test process; the user class and the bench rows run in `make bench`.)"""
from __future__ import annotations

import base64
import json
import struct

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import deserialize_bytes_tensor

from handlers import oip
from loadtest import oip_bodies, payloads
from loadtest.checks import AnswerShape, check_oip_answer
from loadtest.request_body import TEXT_PLAIN, Payload
from stackctl.catalog.specs import get_spec


def decode(p: Payload) -> tuple[dict, list[bytes]]:
    """(JSON header, elements) of a binary-extension body, split where its header says."""
    headers = dict(p.headers)
    length = int(headers[oip_bodies.HEADER_LENGTH])
    header = json.loads(p.body[:length])
    (tensor,) = header["inputs"]
    assert tensor["parameters"]["binary_data_size"] == len(p.body) - length
    return header, list(deserialize_bytes_tensor(p.body[length:]))


@pytest.mark.parametrize("model", ["digits", "langid"])
@pytest.mark.parametrize("instances", [1, 8, 32])
def test_bodies_decode_to_the_models_own_inputs(model: str, instances: int) -> None:
    spec = get_spec(model)
    singles = payloads.payloads_for(spec).good
    bodies = oip_bodies.oip_payloads_for(spec, instances)
    expected = [oip_bodies.element(p) for p in singles]
    assert len(bodies) >= oip_bodies.MIN_BODIES and len(bodies) * instances >= len(singles)  # every single used
    # under TorchServe's max_request_size (config.properties): digits' 1 MB BMPs are spread out
    assert max(len(b.body) for b in bodies) < 8 * 1024 * 1024
    for number, body in enumerate(bodies):
        header, elements = decode(body)
        (tensor,) = header["inputs"]
        assert (tensor["name"], tensor["datatype"], tensor["shape"]) == (payloads.kind_of(spec), "BYTES", [instances])
        assert body.instances == instances == len(elements)
        assert elements == [expected[(number + j * len(bodies)) % len(expected)] for j in range(instances)]
        assert header["id"] == str(number)
        assert {o["name"]: o["parameters"] for o in header["outputs"]} == {
            "label": {"binary_data": True}, "probability": {"binary_data": True}}
        assert dict(body.headers)["X-Inference-Protocol"] == "v2"
        assert body.content_type == "application/octet-stream"


def test_elements_unwrap_json_envelopes_and_keep_raw_bodies() -> None:
    png = b"\x89PNG\r\n\x1a\n rest"
    assert oip_bodies.element(Payload(png, "image/png", "raw")) == png
    b64 = json.dumps({"image": base64.b64encode(png).decode()}).encode()
    assert oip_bodies.element(Payload(b64, "application/json", "json")) == png
    assert oip_bodies.element(Payload('{"text": "grüße"}'.encode(), "application/json", "t")) == "grüße".encode()
    assert oip_bodies.element(Payload("grüße".encode(), TEXT_PLAIN, "t")) == "grüße".encode()
    with pytest.raises(ValueError, match="no OIP element"):
        oip_bodies.element(Payload(b'{"picture": 1}', "application/json", "odd"))


def test_a_body_is_what_tritonclient_http_itself_sends() -> None:
    singles = [b"abc", b"", "é".encode()]
    (body,) = oip_bodies.oip_payloads("text", [Payload(e, TEXT_PLAIN, "x") for e in singles], 3)[:1]
    elements = [singles[(j * oip_bodies.MIN_BODIES) % 3] for j in range(3)]  # body 0 of MIN_BODIES, interleaved
    tensor = triton.InferInput("text", [3], "BYTES")
    tensor.set_data_from_numpy(np.array(elements, dtype=object), binary_data=True)
    outputs = [triton.InferRequestedOutput(n, binary_data=True) for n in ("label", "probability")]
    theirs, length = triton.InferenceServerClient.generate_request_body([tensor], outputs=outputs, request_id="0")
    assert body.body == theirs and dict(body.headers)[oip_bodies.HEADER_LENGTH] == str(length)
    # Triton's serialisation: a 4-byte little-endian length before each element
    assert body.body[length:] == b"".join(struct.pack("<I", len(e)) + e for e in elements)


def test_no_instances_is_refused() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        oip_bodies.oip_payloads("text", [Payload(b"a", TEXT_PLAIN, "a")], 0)


def _answer(rows: int, k: int) -> tuple[bytes, str]:
    """The handler codec's binary answer (handlers/oip.py) to one of our bodies of `rows` instances."""
    (body,) = oip_bodies.oip_payloads("text", [Payload(b"hallo", TEXT_PLAIN, "x")], rows)[:1]
    request = oip.parse_request(body.body, dict(body.headers)[oip_bodies.HEADER_LENGTH], "text", k)
    assert len(request.elements) == rows and request.outputs == (("label", True), ("probability", True))
    encoded = oip.encode_response("langid", "1", request, [["de"] * k] * rows, [[0.5] * k] * rows)
    return encoded.body, encoded.headers[oip_bodies.HEADER_LENGTH]


def test_the_answer_check_reads_the_json_header_only() -> None:
    shape = AnswerShape("digits", top_k=3)
    body, length = _answer(8, 3)
    parsed = triton.InferResult.from_response_body(body, header_length=int(length))  # tritonclient reads it too
    assert parsed.as_numpy("probability").shape == (8, 3)
    assert check_oip_answer(shape, 8, 200, body, length) is None
    assert "expected [4, k]" in (check_oip_answer(shape, 4, 200, body, length) or "")
    assert "k = 5" in (check_oip_answer(AnswerShape("digits", top_k=5), 8, 200, body, length) or "")
    json_only = json.dumps({"outputs": [{"name": "label", "shape": [1, 3], "data": ["1", "2", "3"]},
                                        {"name": "probability", "shape": [1, 3], "data": [0.5, 0.3, 0.2]}]}).encode()
    assert check_oip_answer(shape, 1, 200, json_only, None) is None
    assert check_oip_answer(shape, 1, 400, b'{"error": "instance 0: invalid_image"}', None) == \
        "HTTP 400 (instance 0: invalid_image)"
    assert check_oip_answer(shape, 1, 200, b"not json", None) == "HTTP 200 with a body that is not an OIP answer"


def test_the_infer_path_names_the_model_and_version() -> None:
    assert oip_bodies.infer_path("digits") == "/v2/models/digits/infer"
    assert oip_bodies.infer_path("digits", "2") == "/v2/models/digits/versions/2/infer"
