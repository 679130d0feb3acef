"""The Open Inference Protocol (v2) codec: an infer request's body in, its response body out.

Pure functions over bytes and JSON, no serving runtime: `parse_request` reads and checks a
request (JSON, or the binary tensor data extension when `Inference-Header-Content-Length` is
given), `encode_response` writes the answer the way the request asked for it, `error_body` the v2
error shape. What a valid request is comes from `handlers/oip_contract.py`.

The binary extension as Triton defines it (and tritonclient sends it): the body is a JSON header
of `Inference-Header-Content-Length` bytes, then the raw data of each input whose
`parameters.binary_data_size` is set, in the order of `inputs`; a BYTES tensor's raw data is, per
element, a 4-byte little-endian length and the bytes. Responses likewise, for each output asked
for with `parameters.binary_data` (or all of them with the request's
`parameters.binary_data_output`); FP32 data is little-endian float32.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from handlers import errors
from handlers.oip_contract import (
    BINARY_CONTENT_TYPE,
    BYTES,
    HEADER_LENGTH_HEADER,
    JSON_CONTENT_TYPE,
    LABEL,
    MAX_INSTANCES,
    OUTPUT_DATATYPES,
    OUTPUT_NAMES,
    Kind,
)

LENGTH_PREFIX = 4  # bytes of the little-endian length before each BYTES element


class OipError(Exception):
    """A body that is not a valid v2 infer request for this model: 400 with `message`."""

    def __init__(self, message: str, error_type: str = errors.INVALID_REQUEST):
        super().__init__(message)
        self.message = message
        self.type = error_type


@dataclass(frozen=True)
class InferRequest:
    """A checked infer request: its input's elements (str from JSON, bytes from the binary
    extension), the k to answer, and the outputs to answer, in order, each (name, binary)."""

    id: str | None
    elements: tuple[str | bytes, ...]
    top_k: int
    outputs: tuple[tuple[str, bool], ...]
    parameters: dict[str, Any] = field(default_factory=dict)  # the request's own (sequence_id, ...)


@dataclass(frozen=True)
class Encoded:
    """A response body; `header_length` (the binary extension) is set when any output is binary:
    the adapter sends it as the `Inference-Header-Content-Length` response header."""

    body: bytes
    content_type: str
    header_length: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.header_length is None else {HEADER_LENGTH_HEADER: str(self.header_length)}


def error_body(message: str) -> bytes:
    """The v2 error shape: {"error": "<message>"}."""
    return json.dumps({"error": message}).encode()


def expected_input(kind: Kind) -> str:
    return f"one input {kind!r} (BYTES, shape [N] or [N, 1])"


# --- requests ------------------------------------------------------------------------------------
def parse_request(body: Any, header_length: Any, kind: Kind, top_k: int) -> InferRequest:
    """The infer request in `body` for a model of `kind` answering `top_k` labels, or OipError.

    `header_length`: the request's Inference-Header-Content-Length (None without the binary
    extension). `body`: bytes (a str or a dict that a server already decoded pass too)."""
    document, binary = split_body(body, header_length)
    if not isinstance(document, dict):
        raise OipError(f"the request must be a JSON object with \"inputs\", got {type(document).__name__}")
    tensor = the_input(document.get("inputs"), kind)
    count = instance_count(tensor, kind)
    elements = read_elements(tensor, kind, count, binary)
    return InferRequest(request_id(document), elements, requested_top_k(document.get("parameters"), top_k),
                        requested_outputs(document), dict(document.get("parameters") or {}))


def split_body(body: Any, header_length: Any) -> tuple[Any, bytes]:
    """(the JSON document, the binary data after it)."""
    if isinstance(body, (dict, list)):
        if header_length is not None:
            raise OipError(f"{HEADER_LENGTH_HEADER} is set but the body is not binary data")
        return body, b""
    if body is not None and not isinstance(body, (bytes, bytearray, str)):
        raise OipError(f"unexpected body of type {type(body).__name__}")
    raw = body.encode() if isinstance(body, str) else bytes(body or b"")
    if not raw:
        raise OipError('request body is empty; send a v2 infer request: {"inputs": [...]}', errors.EMPTY_INPUT)
    if header_length is None:
        return parse_json(raw, "request body"), b""
    length = header_size(header_length, len(raw))
    return parse_json(raw[:length], "JSON header"), raw[length:]


def header_size(value: Any, body_size: int) -> int:
    """The request's Inference-Header-Content-Length as a number of bytes within the body."""
    text = str(value).strip()
    if not text.isdigit() or not text.isascii():
        raise OipError(f"{HEADER_LENGTH_HEADER} must be the JSON header's length in bytes, got {value!r}")
    length = int(text)
    if length == 0 or length > body_size:
        raise OipError(f"{HEADER_LENGTH_HEADER} is {length} but the body has {body_size} bytes: "
                       "it must give the length of the JSON header at the start of the body")
    return length


def parse_json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise OipError(f"the {what} is not valid UTF-8 (invalid byte at offset {exc.start})",
                       errors.INVALID_ENCODING) from None
    except (ValueError, RecursionError) as exc:
        raise OipError(f"the {what} is not valid JSON: {exc}", errors.INVALID_JSON) from None


def the_input(inputs: Any, kind: Kind) -> dict[str, Any]:
    """The request's one input tensor, named for the model's kind, of datatype BYTES."""
    if not isinstance(inputs, list) or not inputs:
        raise OipError(f"the request has no \"inputs\"; this model takes {expected_input(kind)}")
    for tensor in inputs:
        name = tensor.get("name") if isinstance(tensor, dict) else None
        if name != kind:
            shown = repr(name) if isinstance(name, str) else "without a name"
            raise OipError(f"unknown input {shown}; this model takes {expected_input(kind)}")
    if len(inputs) > 1:
        raise OipError(f"the request has {len(inputs)} inputs named {kind!r}; this model takes {expected_input(kind)}")
    tensor = inputs[0]
    if tensor.get("datatype") != BYTES:
        raise OipError(f"input {kind!r} has datatype {tensor.get('datatype')!r}; expected BYTES")
    return dict(tensor)


def instance_count(tensor: dict[str, Any], kind: Kind) -> int:
    """N, from the input's shape [N] or [N, 1], within 1..MAX_INSTANCES."""
    shape = tensor.get("shape")
    if not (isinstance(shape, list) and len(shape) in (1, 2)
            and all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
            and (len(shape) == 1 or shape[1] == 1)):
        raise OipError(f"input {kind!r} has shape {json.dumps(shape)}; expected [N] or [N, 1]")
    count = int(shape[0])
    if count < 1:
        raise OipError(f"input {kind!r} has shape {json.dumps(shape)}: no instances; send at least one")
    if count > MAX_INSTANCES:
        raise OipError(f"input {kind!r} has {count} instances; the limit is {MAX_INSTANCES} per request "
                       "(send the rest in more requests)")
    return count


def read_elements(tensor: dict[str, Any], kind: Kind, count: int, binary: bytes) -> tuple[str | bytes, ...]:
    """The input's elements: its JSON `data`, or its binary data after the JSON header."""
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise OipError(f"input {kind!r}: parameters must be a JSON object")
    if "shared_memory_region" in parameters:
        raise OipError(f"input {kind!r}: shared memory is not supported; send the data in the request")
    size = parameters.get("binary_data_size")
    if size is None:
        if binary:
            raise OipError(f"{len(binary)} bytes follow the JSON header but input {kind!r} has no "
                           "parameters.binary_data_size")
        return json_elements(tensor, kind, count)
    if "data" in tensor:
        raise OipError(f"input {kind!r} has both data and parameters.binary_data_size; send one of them")
    if not isinstance(size, int) or isinstance(size, bool) or size != len(binary):
        raise OipError(f"input {kind!r}: parameters.binary_data_size is {size!r} but {len(binary)} bytes follow "
                       f"the JSON header ({HEADER_LENGTH_HEADER})")
    return binary_elements(binary, kind, count)


def json_elements(tensor: dict[str, Any], kind: Kind, count: int) -> tuple[str, ...]:
    """The strings of a JSON `data` array (flat, or nested as its shape), `count` of them."""
    if "data" not in tensor:
        raise OipError(f"input {kind!r} has neither data nor parameters.binary_data_size")
    data = tensor["data"]
    flat = [value for row in data for value in (row if isinstance(row, list) else [row])] \
        if isinstance(data, list) else data
    if not isinstance(flat, list):
        raise OipError(f"input {kind!r}: data must be an array of strings, got {type(data).__name__}")
    if len(flat) != count:
        raise OipError(f"input {kind!r} has {len(flat)} elements in data but its shape "
                       f"{json.dumps(tensor['shape'])} says {count}")
    for index, value in enumerate(flat):
        if not isinstance(value, str):
            what = "base64 of an image file" if kind == "image" else "UTF-8 text"
            raise OipError(f"input {kind!r}: element {index} is {type(value).__name__}, expected a string ({what})")
    return tuple(flat)


def binary_elements(raw: bytes, kind: Kind, count: int) -> tuple[bytes, ...]:
    """BYTES elements from their binary form: per element a 4-byte little-endian length, then the bytes."""
    elements: list[bytes] = []
    offset = 0
    while offset < len(raw) and len(elements) < count:
        if offset + LENGTH_PREFIX > len(raw):
            raise OipError(f"input {kind!r}: the binary data ends inside the length of element {len(elements)}")
        size = int.from_bytes(raw[offset:offset + LENGTH_PREFIX], "little")
        offset += LENGTH_PREFIX
        if offset + size > len(raw):
            raise OipError(f"input {kind!r}: element {len(elements)} is {size} bytes long but only "
                           f"{len(raw) - offset} bytes of binary data are left")
        elements.append(raw[offset:offset + size])
        offset += size
    if offset != len(raw):
        raise OipError(f"input {kind!r}: its shape says {count} elements but {len(raw) - offset} bytes of "
                       "binary data are left after them")
    if len(elements) != count:
        raise OipError(f"input {kind!r}: its shape says {count} elements but the binary data holds {len(elements)}")
    return tuple(elements)


def request_id(document: dict[str, Any]) -> str | None:
    value = document.get("id")
    if value is not None and not isinstance(value, str):
        raise OipError(f"id must be a string, got {type(value).__name__}")
    return value


def requested_top_k(parameters: Any, top_k: int) -> int:
    """The request's `parameters.top_k` (1..the model's top_k), else the model's."""
    if parameters is not None and not isinstance(parameters, dict):
        raise OipError("parameters must be a JSON object")
    value = (parameters or {}).get("top_k")
    if value is None:
        return top_k
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top_k:
        raise OipError(f"parameters.top_k must be an integer from 1 to {top_k}, got {json.dumps(value)}")
    return value


def requested_outputs(document: dict[str, Any]) -> tuple[tuple[str, bool], ...]:
    """(name, binary) per output to answer: those the request names, in its order, else all."""
    parameters = document.get("parameters") or {}
    default = parameters.get("binary_data_output", False)
    if not isinstance(default, bool):
        raise OipError(f"parameters.binary_data_output must be true or false, got {json.dumps(default)}")
    outputs = document.get("outputs")
    if not outputs:  # absent or []: every output
        return tuple((name, default) for name in OUTPUT_NAMES)
    if not isinstance(outputs, list):
        raise OipError("outputs must be an array of {\"name\": ...} objects")
    chosen: list[tuple[str, bool]] = []
    for output in outputs:
        name = output.get("name") if isinstance(output, dict) else None
        if name not in OUTPUT_NAMES or any(name == seen for seen, _ in chosen):
            problem = "is asked for twice" if name in OUTPUT_NAMES else "is not an output of this model"
            raise OipError(f"output {json.dumps(name)} {problem}; the outputs are {', '.join(OUTPUT_NAMES)}")
        chosen.append((name, output_binary(output, default)))
    return tuple(chosen)


def output_binary(output: dict[str, Any], default: bool) -> bool:
    parameters = output.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise OipError(f"output {output['name']!r}: parameters must be a JSON object")
    if "classification" in parameters or "shared_memory_region" in parameters:
        raise OipError(f"output {output['name']!r}: the classification and shared memory extensions are not "
                       "supported; read the label and probability outputs")
    binary = parameters.get("binary_data", default)
    if not isinstance(binary, bool):
        raise OipError(f"output {output['name']!r}: parameters.binary_data must be true or false")
    return binary


# --- responses -----------------------------------------------------------------------------------
def serialize_bytes(values: Sequence[bytes]) -> bytes:
    """BYTES elements in their binary form (the inverse of `binary_elements`)."""
    return b"".join(len(value).to_bytes(LENGTH_PREFIX, "little") + value for value in values)


def encode_response(model_name: str, model_version: str, request: InferRequest,
                    labels: Sequence[Sequence[str]], probabilities: Sequence[Sequence[float]]) -> Encoded:
    """The response to `request`: per instance its labels and their probabilities, best first
    (N rows of k). Binary where the request asked for it, JSON otherwise."""
    shape = [len(labels), len(labels[0]) if labels else 0]
    header: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        header["id"] = request.id
    header["outputs"] = []
    blobs: list[bytes] = []
    for name, binary in request.outputs:
        tensor: dict[str, Any] = {"name": name, "datatype": OUTPUT_DATATYPES[name], "shape": shape}
        if name == LABEL:
            flat_labels = [label for row in labels for label in row]
            blob = serialize_bytes([label.encode() for label in flat_labels]) if binary else b""
            data: list[Any] = flat_labels
        else:
            data = [float(p) for row in probabilities for p in row]
            blob = struct.pack(f"<{len(data)}f", *data) if binary else b""
        if binary:
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = data
        header["outputs"].append(tensor)
    text = json.dumps(header, separators=(",", ":")).encode()
    if not blobs:
        return Encoded(text, JSON_CONTENT_TYPE)
    return Encoded(text + b"".join(blobs), BINARY_CONTENT_TYPE, len(text))
