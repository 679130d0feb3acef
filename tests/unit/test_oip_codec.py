"""The v2 codec and contract on their own, byte for byte against tritonclient's own encoders and
decoders (tritonclient.http builds the requests and reads the responses; tritonclient.utils
serialises BYTES tensors)."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.http import InferInput, InferRequestedOutput, InferResult
from tritonclient.http._utils import _get_inference_request
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from handlers import oip
from handlers.oip_contract import (
    HEADER_LENGTH_HEADER,
    MAX_INSTANCES,
    handler_top_k,
    input_tensor,
    model_tensors,
    task_kind,
    tensors,
)
from stackctl.catalog.archive_files import read_config, read_manifest
from stackctl.catalog.specs import get_spec

VALUES = [b"", b"a", "héllo wörld".encode(), bytes(range(256)), b"\x00" * 70_000]


def tritonclient_request(values: list[bytes], binary: bool, outputs=None, parameters=None,
                         request_id: str = "") -> tuple[bytes, int | None]:
    tensor = InferInput("text", [len(values)], "BYTES")
    tensor.set_data_from_numpy(np.array(values, dtype=np.object_), binary_data=binary)
    return _get_inference_request([tensor], request_id, outputs, 0, False, False, 0, None, parameters)


def test_binary_bytes_are_tritons_serialization() -> None:
    serialized = serialize_byte_tensor(np.array(VALUES, dtype=np.object_)).item()
    assert oip.serialize_bytes(VALUES) == serialized
    assert oip.binary_elements(serialized, "text", len(VALUES)) == tuple(VALUES)
    assert list(deserialize_bytes_tensor(oip.serialize_bytes(VALUES))) == VALUES


@pytest.mark.parametrize("binary", [True, False])
def test_parse_reads_what_tritonclient_sends(binary: bool) -> None:
    values = [b"bonjour", "grüß gott".encode(), b"x"]
    body, length = tritonclient_request(values, binary, request_id="r1")
    assert (length is not None) == binary
    request = oip.parse_request(body, None if length is None else str(length), "text", 3)
    assert [e if isinstance(e, bytes) else e.encode() for e in request.elements] == values
    assert request.id == "r1" and request.top_k == 3
    assert request.outputs == (("label", True), ("probability", True))  # tritonclient's default


def test_parse_reads_outputs_top_k_and_a_decoded_body() -> None:
    outputs = [InferRequestedOutput("probability", binary_data=False), InferRequestedOutput("label")]
    body, _ = tritonclient_request([b"hi"], False, outputs, {"top_k": 2})
    request = oip.parse_request(json.loads(body), None, "text", 3)  # a body TorchServe already decoded
    assert request.outputs == (("probability", False), ("label", True)) and request.top_k == 2
    nested = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2, 1], "data": [["aGk="], ["aG8="]]}]}
    assert oip.parse_request(json.dumps(nested).encode(), None, "image", 3).elements == ("aGk=", "aG8=")


@pytest.mark.parametrize("label_binary,probability_binary", [(True, True), (False, False), (True, False)])
def test_tritonclient_reads_what_encode_writes(label_binary: bool, probability_binary: bool) -> None:
    request = oip.InferRequest("7", (b"a", b"b"), 2, (("label", label_binary), ("probability", probability_binary)))
    labels, probabilities = [["french", "dutch"], ["ünïcode", "x"]], [[0.9, 0.05], [0.6, 0.4]]
    encoded = oip.encode_response("langid", "1.0", request, labels, probabilities)
    binary = label_binary or probability_binary
    assert encoded.content_type == ("application/octet-stream" if binary else "application/json")
    assert (HEADER_LENGTH_HEADER in encoded.headers) == binary
    result = InferResult.from_response_body(encoded.body, header_length=encoded.header_length)
    assert result.get_response()["id"] == "7" and result.get_response()["model_version"] == "1.0"
    got = [[v.decode() if isinstance(v, bytes) else v for v in row] for row in result.as_numpy("label")]
    assert got == labels
    assert result.as_numpy("probability").dtype == np.float32
    assert np.array_equal(result.as_numpy("probability"), np.array(probabilities, dtype=np.float32))
    if probability_binary:
        assert encoded.body.endswith(struct.pack("<4f", 0.9, 0.05, 0.6, 0.4))


def test_error_body_is_the_v2_shape() -> None:
    assert json.loads(oip.error_body("bad \"thing\"")) == {"error": "bad \"thing\""}


def test_the_contract_tensors() -> None:
    inputs, outputs = tensors("image", 3)
    assert inputs == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert outputs == [{"name": "label", "datatype": "BYTES", "shape": [-1, 3]},
                       {"name": "probability", "datatype": "FP32", "shape": [-1, 3]}]
    assert tensors("text", 5)[0] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    with pytest.raises(ValueError):
        input_tensor("audio")  # type: ignore[arg-type]
    assert MAX_INSTANCES >= 32  # the bench sends 32 instances per request


def test_task_kind_from_settings_or_handler_file() -> None:
    assert task_kind({"image": {"size": [8, 8]}}) == "image"
    assert task_kind({"top_k": 3, "text": {}}, "handlers/image_classifier.py") == "text"
    assert task_kind({"top_k": 3}, "text_classifier.py") == "text"
    assert task_kind(None, "handlers/image_classifier.py") == "image"
    with pytest.raises(ValueError, match="cannot tell the task kind"):
        task_kind({"top_k": 3}, "my_handler.py")
    assert handler_top_k({"top_k": 5}) == 5 and handler_top_k({}) == 3


@pytest.mark.parametrize("name,kind", [("digits", "image"), ("langid", "text")])
def test_model_tensors_from_a_built_archive(name: str, kind: str) -> None:
    """What the gateway reads: the archive's model-config.yaml and its manifest's handler."""
    archive = get_spec(name).archive_path
    inputs, outputs = model_tensors(read_config(archive), read_manifest(archive)["model"]["handler"])
    assert inputs[0]["name"] == kind and outputs[0]["shape"] == [-1, get_spec(name).handler.top_k]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(st.binary(max_size=512),
                      st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                                   lambda inner: st.lists(inner, max_size=3)
                                   | st.dictionaries(st.sampled_from(["inputs", "name", "datatype", "shape", "data",
                                                                      "parameters", "outputs", "top_k", "id",
                                                                      "binary_data_size"]), inner, max_size=4),
                                   max_leaves=16).map(lambda v: json.dumps(v).encode())),
       header_length=st.one_of(st.none(), st.integers(-2, 600).map(str), st.text(max_size=4)))
def test_any_body_is_parsed_or_refused_with_an_oip_error(body: bytes, header_length: str | None) -> None:
    try:
        request = oip.parse_request(body, header_length, "text", 3)
    except oip.OipError as err:
        assert err.message
    else:
        assert 1 <= len(request.elements) <= MAX_INSTANCES and 1 <= request.top_k <= 3


NEAR_VALID = st.fixed_dictionaries(
    {"inputs": st.lists(st.fixed_dictionaries(
        {"name": st.sampled_from(["text", "image", ""]), "datatype": st.sampled_from(["BYTES", "FP32", 1]),
         "shape": st.lists(st.integers(-1, MAX_INSTANCES + 2), max_size=3),
         "data": st.lists(st.text(max_size=6) | st.integers() | st.lists(st.text(max_size=3), max_size=2), max_size=5)}),
        max_size=2)},
    optional={"parameters": st.dictionaries(st.sampled_from(["top_k", "binary_data_output"]),
                                            st.integers(-1, 5) | st.booleans() | st.text(max_size=2), max_size=2),
              "outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["label", "probability", "x"])},
                                                        optional={"parameters": st.dictionaries(
                                                            st.sampled_from(["binary_data", "classification"]),
                                                            st.booleans() | st.integers(0, 3), max_size=2)}),
                                  max_size=3),
              "id": st.text(max_size=4) | st.integers()})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=NEAR_VALID)
def test_any_near_valid_request_is_parsed_or_refused_with_an_oip_error(document: dict) -> None:
    try:
        request = oip.parse_request(json.dumps(document).encode(), None, "text", 3)
    except oip.OipError as err:
        assert err.message
    else:
        assert all(isinstance(e, str) for e in request.elements) and 1 <= request.top_k <= 3
        assert len(request.elements) == document["inputs"][0]["shape"][0]
