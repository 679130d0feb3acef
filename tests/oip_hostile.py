"""The hostile Open Inference Protocol (v2) infer requests: each a body, its headers and the 400 it
must get, with the start of its message.

One table for the in-process tests (tests/unit/test_oip_handler.py), for the live suites that
drive a real stack, and for the table in docs/hostile-inputs.md ("Open Inference Protocol (v2)"),
so they never disagree. Requests are built the way tritonclient builds them
(`tritonclient.http._utils._get_inference_request`) when the request is well-formed up to the
mistake under test, and by hand otherwise.
"""
from __future__ import annotations

import base64
import gzip
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from handlers.oip_contract import HEADER_LENGTH_HEADER, MAX_INSTANCES, PROTOCOL_HEADER, PROTOCOL_VALUE
from handlers.oip_encoding import DEFAULT_MAX_SIZE, ENCODING_HEADER
from tests.hostile import digit

V2 = {PROTOCOL_HEADER: PROTOCOL_VALUE}
INPUT = {"digits": "image", "langid": "text"}


def element(model: str) -> bytes:
    """One valid instance for `model`: a PNG digit or a sentence."""
    return digit() if model == "digits" else b"bonjour tout le monde"


def json_element(model: str) -> str:
    """The same instance as a JSON BYTES element: base64 for images, the text itself for text."""
    return base64.b64encode(digit()).decode() if model == "digits" else "bonjour tout le monde"


def serialized(values: list[bytes]) -> bytes:
    return b"".join(len(v).to_bytes(4, "little") + v for v in values)


def json_request(document: object) -> tuple[bytes, dict[str, str]]:
    """A v2 request with a JSON body only."""
    return json.dumps(document).encode(), dict(V2)


def binary_request(header: object, data: bytes, header_length: str | None = None) -> tuple[bytes, dict[str, str]]:
    """A v2 request with the binary extension: `header` as JSON, then `data`; the header length
    is the header's own unless `header_length` says otherwise."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return text + data, {**V2, HEADER_LENGTH_HEADER: header_length or str(len(text))}


def tensor(model: str, data: list[object] | None = None, shape: list[int] | None = None, **fields: object) -> dict:
    data = [json_element(model)] if data is None else data
    return {"name": INPUT[model], "datatype": "BYTES", "shape": shape or [len(data)], "data": data, **fields}


def binary_tensor(model: str, values: list[bytes], size: int | None = None) -> tuple[dict, bytes]:
    raw = serialized(values)
    return ({"name": INPUT[model], "datatype": "BYTES", "shape": [len(values)],
             "parameters": {"binary_data_size": len(raw) if size is None else size}}, raw)


@dataclass(frozen=True)
class OipCase:
    id: str
    model: str
    make: Callable[[], tuple[bytes, dict[str, str]]]
    message: str          # how the answer's {"error": "..."} starts
    description: str
    status: int = 400

    def request(self) -> tuple[bytes, dict[str, str]]:
        return self.make()


def cases_for(model: str) -> list[OipCase]:
    """The hostile v2 requests for a model (the same mistakes for every model, named for its input)."""
    name, good = INPUT[model], element(model)
    filler = b"0123456789"  # the binary framing cases: any 10 bytes, so the messages do not depend on the image
    bad_instance = b"this is not an image" if model == "digits" else "\U0001f600".encode()
    bad_message = ("invalid_image: body is not a recognised image (PNG, JPEG, GIF, BMP, WebP, TIFF)"
                   if model == "digits" else "unclassifiable_text: text has no letters to classify")

    def binary(values: list[bytes], size: int | None = None, **header: object) -> tuple[bytes, dict[str, str]]:
        spec, raw = binary_tensor(model, values, size)
        return binary_request({"inputs": [spec], **header}, raw)

    return [
        OipCase("no-inputs", model, lambda: json_request({"id": "1"}),
                f"the request has no \"inputs\"; this model takes one input '{name}'", "no \"inputs\" at all"),
        OipCase("empty-inputs", model, lambda: json_request({"inputs": []}),
                "the request has no \"inputs\"", "an empty \"inputs\" array"),
        OipCase("misnamed-input", model, lambda: json_request({"inputs": [{**tensor(model), "name": "input0"}]}),
                f"unknown input 'input0'; this model takes one input '{name}' (BYTES, shape [N] or [N, 1])",
                "the input named input0"),
        OipCase("two-inputs", model, lambda: json_request({"inputs": [tensor(model), tensor(model)]}),
                f"the request has 2 inputs named '{name}'", "the input twice"),
        OipCase("wrong-datatype", model, lambda: json_request({"inputs": [{**tensor(model), "datatype": "FP32"}]}),
                f"input '{name}' has datatype 'FP32'; expected BYTES", "datatype FP32"),
        OipCase("wrong-shape", model, lambda: json_request({"inputs": [tensor(model, [json_element(model)] * 4,
                                                                              [2, 2])]}),
                f"input '{name}' has shape [2, 2]; expected [N] or [N, 1]", "shape [2, 2]"),
        OipCase("shape-count-mismatch", model, lambda: json_request({"inputs": [tensor(model, shape=[3])]}),
                f"input '{name}' has 1 elements in data but its shape [3] says 3", "shape [3] with 1 element"),
        OipCase("zero-instances", model, lambda: json_request({"inputs": [tensor(model, [], [0])]}),
                f"input '{name}' has shape [0]: no instances", "shape [0]"),
        OipCase("too-many-instances", model,
                lambda: json_request({"inputs": [tensor(model, [json_element(model)] * (MAX_INSTANCES + 1))]}),
                f"input '{name}' has {MAX_INSTANCES + 1} instances; the limit is {MAX_INSTANCES} per request",
                f"{MAX_INSTANCES + 1} instances (the limit is {MAX_INSTANCES})"),
        OipCase("element-not-string", model, lambda: json_request({"inputs": [tensor(model, [42])]}),
                f"input '{name}': element 0 is int, expected a string", "a number as a JSON element"),
        OipCase("no-data", model, lambda: json_request({"inputs": [{"name": name, "datatype": "BYTES", "shape": [1]}]}),
                f"input '{name}' has neither data nor parameters.binary_data_size", "neither data nor binary data"),
        OipCase("body-not-json", model, lambda: (b"{\"inputs\": [", dict(V2)),
                "the request body is not valid JSON", "a JSON body cut short"),
        OipCase("header-not-json", model, lambda: binary_request(b"not json at all", serialized([good])),
                "the JSON header is not valid JSON", "binary extension: the header is not JSON"),
        OipCase("header-length-not-a-number", model,
                lambda: binary_request(binary_tensor(model, [good])[0], serialized([good]), "twelve"),
                f"{HEADER_LENGTH_HEADER} must be the JSON header's length in bytes, got 'twelve'",
                f"{HEADER_LENGTH_HEADER}: twelve"),
        OipCase("header-length-past-body", model,
                lambda: binary_request(binary_tensor(model, [good])[0], serialized([good]), "100000000"),
                f"{HEADER_LENGTH_HEADER} is 100000000 but the body has", "a header length past the body's end"),
        OipCase("header-length-too-short", model,
                lambda: binary_request(json.dumps({"inputs": [binary_tensor(model, [good])[0]]}).encode(),
                                       serialized([good]), "10"),
                "the JSON header is not valid JSON", "a header length that cuts the JSON short"),
        OipCase("binary-size-mismatch", model, lambda: binary([good], size=3),
                f"input '{name}': parameters.binary_data_size is 3 but", "binary_data_size smaller than the data"),
        OipCase("binary-element-truncated", model,
                lambda: binary_request({"inputs": [{**binary_tensor(model, [filler])[0],
                                                    "parameters": {"binary_data_size": 6}}]},
                                       serialized([filler])[:6]),
                f"input '{name}': element 0 is 10 bytes long but only 2 bytes of binary data are left",
                "an element cut short"),
        OipCase("binary-count-mismatch", model,
                lambda: binary_request({"inputs": [{**binary_tensor(model, [filler, filler])[0], "shape": [1]}]},
                                       serialized([filler, filler])),
                f"input '{name}': its shape says 1 elements but 14 bytes of binary data are left after them",
                "two elements in the data, shape [1]"),
        OipCase("binary-too-few", model,
                lambda: binary_request({"inputs": [{**binary_tensor(model, [filler])[0], "shape": [3]}]},
                                       serialized([filler])),
                f"input '{name}': its shape says 3 elements but the binary data holds 1",
                "one element in the data, shape [3]"),
        OipCase("top-k-zero", model, lambda: binary([good], parameters={"top_k": 0}),
                "parameters.top_k must be an integer from 1 to 3, got 0", "parameters.top_k 0"),
        OipCase("top-k-above-spec", model, lambda: binary([good], parameters={"top_k": 4}),
                "parameters.top_k must be an integer from 1 to 3, got 4", "parameters.top_k above the spec's top_k"),
        OipCase("top-k-string", model, lambda: binary([good], parameters={"top_k": "2"}),
                "parameters.top_k must be an integer from 1 to 3, got \"2\"", "parameters.top_k a string"),
        OipCase("unknown-output", model, lambda: binary([good], outputs=[{"name": "scores"}]),
                "output \"scores\" is not an output of this model; the outputs are label, probability",
                "an output named scores"),
        OipCase("classification-extension", model,
                lambda: binary([good], outputs=[{"name": "label", "parameters": {"classification": 2}}]),
                "output 'label': the classification and shared memory extensions are not supported",
                "tritonclient's class_count (classification extension)"),
        OipCase("id-not-string", model, lambda: binary([good], id=7), "id must be a string, got int", "id 7"),
        OipCase("bad-instance", model, lambda: binary([good, bad_instance, good]),
                f"instance 1: {bad_message}", "3 instances, the second one bad: the whole request, naming it"),
        *compression_cases(model),
    ]


def compressed(request: tuple[bytes, dict[str, str]], encoding: str, body: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    """`request` with a Content-Encoding (its body compressed as tritonclient does, or `body`)."""
    data, headers = request
    if body is None:
        body = gzip.compress(data) if encoding == "gzip" else zlib.compress(data)
    return body, {**headers, ENCODING_HEADER: encoding}


def compression_cases(model: str) -> list[OipCase]:
    """Request compression (handlers/oip_encoding.py): bodies that do not decode, or decode too far."""
    valid = json_request({"inputs": [tensor(model)]})
    return [
        OipCase("body-not-gzip", model, lambda: compressed(valid, "gzip", valid[0]),
                "the request body is not valid gzip data (Content-Encoding: gzip): Error -3 while decompressing data",
                "Content-Encoding: gzip on a body that is not gzip"),
        OipCase("gzip-cut-short", model, lambda: compressed(valid, "gzip", gzip.compress(valid[0])[:-12]),
                "the request body is not valid gzip data (Content-Encoding: gzip): it ends early",
                "a gzip body cut short"),
        OipCase("deflate-not-zlib", model, lambda: compressed(valid, "deflate", gzip.compress(valid[0])),
                "the request body is not valid deflate data (Content-Encoding: deflate): Error -3",
                "Content-Encoding: deflate on a gzip body"),
        OipCase("gzip-bomb", model, lambda: compressed(valid, "gzip", gzip.compress(b" " * (DEFAULT_MAX_SIZE + 1))),
                f"the request body decompresses to more than {DEFAULT_MAX_SIZE} bytes (max_request_size)",
                f"8 kB of gzip that decodes to {DEFAULT_MAX_SIZE} + 1 bytes", 413),
        OipCase("unsupported-encoding", model, lambda: compressed(valid, "br", valid[0]),
                "Content-Encoding 'br' is not supported; send gzip, deflate or identity", "Content-Encoding: br", 415),
    ]


CASES = cases_for("digits") + cases_for("langid")


def markdown_table() -> str:
    """The docs/hostile-inputs.md table of v2 cases (the same for every model; digits' shown)."""
    rows = ["| case | request | status | error starts with |", "|---|---|---|---|"]
    for case in cases_for("digits"):
        message = case.message.replace("|", "\\|")
        rows.append(f"| `{case.id}` | {case.description} | {case.status} | `{message}` |")
    return "\n".join(rows)
