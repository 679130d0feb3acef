"""gRPC ModelInfer <-> the REST binary tensor data extension, both ways.

The gateway turns a gRPC `ModelInferRequest` into the REST request tritonclient.http would send
(a JSON header, `Inference-Header-Content-Length` bytes long, then each input's bytes) and posts
it to the front door, so a gRPC request is batched, bounded and counted like every other; the
answer comes back binary and becomes a `ModelInferResponse`. `raw_input_contents` already are
the extension's bytes (BYTES: per element a 4-byte little-endian length, then the bytes), so they
pass through untouched; typed `contents` (what a client sends without raw) are packed the same way.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from tritonclient.grpc import service_pb2 as pb

from handlers import oip_contract

SEQUENCE_HEADERS = {"sequence_id": "ts_request_sequence_id", "sequence_start": "ts_request_sequence_start",
                    "sequence_end": "ts_request_sequence_end"}

HEADER_LENGTH = oip_contract.HEADER_LENGTH_HEADER
# datatype -> (field of InferTensorContents, struct format of one element, little-endian)
TYPED = {"BOOL": ("bool_contents", "?"), "INT8": ("int_contents", "b"), "INT16": ("int_contents", "h"),
         "INT32": ("int_contents", "i"), "INT64": ("int64_contents", "q"), "UINT8": ("uint_contents", "B"),
         "UINT16": ("uint_contents", "H"), "UINT32": ("uint_contents", "I"),
         "UINT64": ("uint64_contents", "Q"), "FP32": ("fp32_contents", "f"), "FP64": ("fp64_contents", "d")}


class BadRequest(ValueError):
    """A request that cannot be put into the binary form; str() is the OIP error text (400)."""


def infer_path(model: str, version: str) -> str:
    """The front door's REST path for a model and optional version."""
    path = f"/v2/models/{quote(model, safe='')}"
    return path + (f"/versions/{quote(version, safe='')}" if version else "") + "/infer"


def serialize_bytes(elements: Iterable[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def _parameters(params: Any) -> dict[str, Any]:
    """An InferParameter map as the JSON values they stand for."""
    return {key: getattr(value, value.WhichOneof("parameter_choice"))
            for key, value in params.items() if value.WhichOneof("parameter_choice")}


def sequence_headers(parameters: dict[str, Any]) -> dict[str, str]:
    """Triton's clients name a stream's request in its parameters (`sequence_id`, `sequence_start`,
    `sequence_end`); TorchServe routes a sequence by its headers (docs/streaming.md)."""
    headers = {}
    if parameters.get("sequence_id") not in (None, "", 0):
        headers[SEQUENCE_HEADERS["sequence_id"]] = str(parameters["sequence_id"])
    for flag in ("sequence_start", "sequence_end"):
        if parameters.get(flag) is True:
            headers[SEQUENCE_HEADERS[flag]] = "true"
    return headers


def _typed_bytes(tensor: Any) -> bytes:
    if tensor.datatype == "BYTES":
        return serialize_bytes(tensor.contents.bytes_contents)
    if tensor.datatype not in TYPED:
        raise BadRequest(f"input {tensor.name!r}: datatype {tensor.datatype!r} has no typed contents")
    field, fmt = TYPED[tensor.datatype]
    values = list(getattr(tensor.contents, field))
    return struct.pack(f"<{len(values)}{fmt}", *values)


def rest_request(request: Any) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of the REST binary request for a gRPC ModelInferRequest."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(f"{len(request.inputs)} inputs but {len(raw)} raw_input_contents")
    inputs, chunks = [], []
    for index, tensor in enumerate(request.inputs):
        data = raw[index] if raw else _typed_bytes(tensor)
        inputs.append({"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape),
                       "parameters": {**_parameters(tensor.parameters), "binary_data_size": len(data)}})
        chunks.append(data)
    header: dict[str, Any] = {"inputs": inputs}
    if request.id:
        header["id"] = request.id
    parameters = _parameters(request.parameters)
    if request.outputs:
        header["outputs"] = [{"name": o.name, "parameters": {**_parameters(o.parameters), "binary_data": True}}
                             for o in request.outputs]
    else:
        parameters["binary_data_output"] = True
    header["parameters"] = parameters
    encoded = json.dumps(header, separators=(",", ":")).encode()
    # identity: aiohttp asks for gzip by default, and the front door would compress the answers
    # over 1 kB for a loopback hop (stackctl/serve/front_door_oip.py GZIP).
    headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(encoded)),
               "Accept-Encoding": "identity", **sequence_headers(parameters)}
    return infer_path(request.model_name, request.model_version), encoded + b"".join(chunks), headers


def _json_bytes(output: dict[str, Any]) -> bytes:
    """An output the server answered in JSON (`data`), as the binary extension's bytes."""
    data = output.get("data", [])
    datatype = output.get("datatype", "")
    if datatype == "BYTES":
        return serialize_bytes(e.encode() if isinstance(e, str) else bytes(e) for e in data)
    if datatype not in TYPED:
        raise ValueError(f"output {output.get('name')!r}: datatype {datatype!r} unknown")
    fmt = TYPED[datatype][1]
    return struct.pack(f"<{len(data)}{fmt}", *data)


def infer_response(body: bytes, header_length: str | None, request: Any) -> Any:
    """The ModelInferResponse for a REST answer (binary extension or plain JSON)."""
    length = int(header_length) if header_length else len(body)
    header = json.loads(body[:length])
    offset = length
    response = pb.ModelInferResponse(model_name=header.get("model_name", request.model_name),
                                     model_version=str(header.get("model_version", request.model_version)),
                                     id=header.get("id", ""))
    for output in header.get("outputs", []):
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            data = body[offset:offset + size]
            offset += size
        else:
            data = _json_bytes(output)
        response.outputs.add(name=output["name"], datatype=output["datatype"], shape=output["shape"])
        response.raw_output_contents.append(data)
    return response
