"""gRPC ModelInfer <-> the REST binary tensor data extension (stackctl.serve.oip_binary): the request
tritonclient.grpc builds becomes the request tritonclient.http would send, and a binary or JSON
answer becomes the ModelInferResponse tritonclient.grpc reads."""
from __future__ import annotations

import json
import struct

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2 as pb
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from stackctl.serve import oip_binary


def _grpc_request(texts: list[bytes], version: str = "") -> pb.ModelInferRequest:
    tensor = grpcclient.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=np.object_))
    request = pb.ModelInferRequest(model_name="langid", model_version=version, id="req-1")
    request.inputs.append(tensor._get_tensor())
    request.raw_input_contents.append(tensor._get_content())
    request.parameters["top_k"].int64_param = 2
    return request


def _split(body: bytes, headers: dict[str, str]) -> tuple[dict, bytes]:
    length = int(headers[oip_binary.HEADER_LENGTH])
    return json.loads(body[:length]), body[length:]


def test_a_grpc_request_becomes_the_binary_rest_request() -> None:
    texts = [b"guten Morgen", "¿qué tal?".encode()]
    path, body, headers = oip_binary.rest_request(_grpc_request(texts, version="1.0"))
    assert path == "/v2/models/langid/versions/1.0/infer"
    header, raw = _split(body, headers)
    assert header["id"] == "req-1" and header["parameters"] == {"top_k": 2, "binary_data_output": True}
    assert header["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [2],
                                 "parameters": {"binary_data_size": len(raw)}}]
    assert list(deserialize_bytes_tensor(raw)) == texts
    assert raw == serialize_byte_tensor(np.array(texts, dtype=np.object_)).item()


def test_typed_contents_are_packed_like_raw_ones() -> None:
    request = pb.ModelInferRequest(model_name="langid")
    request.inputs.add(name="text", datatype="BYTES", shape=[2]).contents.bytes_contents.extend([b"a", b"bc"])
    _, body, headers = oip_binary.rest_request(request)
    header, raw = _split(body, headers)
    assert raw == oip_binary.serialize_bytes([b"a", b"bc"]) and "id" not in header


def test_binary_and_json_answers_become_the_same_grpc_response() -> None:
    labels, probabilities = [b"de", b"nl"], [0.75, 0.125]
    label_bytes = oip_binary.serialize_bytes(labels)
    prob_bytes = struct.pack("<2f", *probabilities)
    outputs = [{"name": "label", "datatype": "BYTES", "shape": [1, 2], "parameters": {"binary_data_size": len(label_bytes)}},
               {"name": "probability", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": 8}}]
    header = json.dumps({"model_name": "langid", "model_version": "1.0", "id": "x", "outputs": outputs}).encode()
    binary = oip_binary.infer_response(header + label_bytes + prob_bytes, str(len(header)), _grpc_request([b"a"]))
    plain = json.dumps({"model_name": "langid", "model_version": "1.0", "id": "x", "outputs": [
        {"name": "label", "datatype": "BYTES", "shape": [1, 2], "data": ["de", "nl"]},
        {"name": "probability", "datatype": "FP32", "shape": [1, 2], "data": probabilities}]}).encode()
    assert oip_binary.infer_response(plain, None, _grpc_request([b"a"])) == binary
    result = grpcclient.InferResult(binary)
    assert list(result.as_numpy("label").ravel()) == labels
    assert result.as_numpy("probability").tolist() == [probabilities]


def test_a_streams_sequence_parameters_become_torchserves_routing_headers() -> None:
    """tritonclient.grpc's infer(sequence_id=..., sequence_start=..., sequence_end=...) sets these."""
    request = _grpc_request([b"hallo"])
    request.parameters["sequence_id"].int64_param = 42
    request.parameters["sequence_start"].bool_param = True
    request.parameters["sequence_end"].bool_param = False
    _, body, headers = oip_binary.rest_request(request)
    assert headers["ts_request_sequence_id"] == "42" and headers["ts_request_sequence_start"] == "true"
    assert "ts_request_sequence_end" not in headers
    header = json.loads(body[:int(headers[oip_binary.HEADER_LENGTH])])
    assert header["parameters"]["sequence_id"] == 42  # the handler checks it against the routed id
    assert "ts_request_sequence_id" not in oip_binary.rest_request(_grpc_request([b"hallo"]))[2]
