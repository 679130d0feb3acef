"""Open Inference Protocol (v2) request bodies for the load test and the bench, built once.

Each body is one `POST /v2/models/<m>/infer` carrying N instances in the binary tensor data
extension, serialised by tritonclient's own code (`InferenceServerClient.generate_request_body`),
so the load is exactly what a `tritonclient.http` user sends: a JSON header (its length in
`Inference-Header-Content-Length`), then per element a 4-byte little-endian length and the bytes;
both outputs asked back as binary, as tritonclient asks by default.

The instances are the model's own load-test bodies (payloads.py, from the spec's `load:` section),
taken in order and wrapped round: an image body's encoded file, a text body's UTF-8 text (a JSON
envelope `{"image": <base64>}` / `{"text": ...}` is unwrapped to the element it carries).
tritonclient is imported on first use: a /predictions-only load generator does not need it.
"""
from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence

from loadtest.payloads import kind_of, payloads_for
from loadtest.request_body import Payload
from stackctl.catalog.specs import ModelSpec

CONTENT_TYPE = "application/octet-stream"
HEADER_LENGTH = "Inference-Header-Content-Length"
# TorchServe routes /v2/models/<m>/infer to the handler itself; this header tells our handler the
# body is OIP. The front door sets it on that path whatever the client sent, so the load test may
# always send it; the bench talks to TorchServe directly and must.
PROTOCOL_HEADER = ("X-Inference-Protocol", "v2")
# The input tensor per input kind (handlers/oip_contract.py's names).
INPUT_NAMES = {"image": "image", "text": "text"}
OUTPUT_NAMES = ("label", "probability")
MIN_BODIES = 8                # distinct bodies per instance count, however few the model's payloads


def infer_path(model: str, version: str | None = None) -> str:
    return f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"


def element(payload: Payload) -> bytes:
    """The one tensor element a /predictions body stands for: the raw file or the UTF-8 text."""
    if not payload.content_type.startswith("application/json"):
        return payload.body
    envelope = json.loads(payload.body)
    if "image" in envelope:
        return base64.b64decode(envelope["image"])
    if "text" in envelope:
        return str(envelope["text"]).encode("utf-8")
    raise ValueError(f"payload {payload.label!r}: a JSON body without 'image' or 'text' has no OIP element")


def binary_request(input_name: str, elements: Sequence[bytes], request_id: str = "") -> tuple[bytes, int]:
    """(body, JSON header length) of one binary-extension request with `elements` as a BYTES [N] input."""
    import numpy as np
    import tritonclient.http as triton

    tensor = triton.InferInput(input_name, [len(elements)], "BYTES")
    data = np.empty(len(elements), dtype=object)
    data[:] = list(elements)  # element by element: numpy would otherwise pad bytes to one width
    tensor.set_data_from_numpy(data, binary_data=True)
    outputs = [triton.InferRequestedOutput(name, binary_data=True) for name in OUTPUT_NAMES]
    body, header_length = triton.InferenceServerClient.generate_request_body([tensor], outputs=outputs,
                                                                             request_id=request_id)
    return bytes(body), int(header_length or len(body))


def oip_payloads(kind: str, singles: Sequence[Payload], instances: int) -> list[Payload]:
    """Bodies of `instances` instances each from a model's single-item bodies, in order, wrapped
    round; as many bodies as it takes to use every single at least once (at least MIN_BODIES)."""
    if instances < 1:
        raise ValueError(f"instances per request must be >= 1, got {instances}")
    if not singles:
        raise ValueError("no single-item bodies to build OIP requests from")
    elements = [element(p) for p in singles]
    out = []
    for number in range(max(MIN_BODIES, math.ceil(len(singles) / instances))):
        start = number * instances
        chosen = [elements[(start + j) % len(elements)] for j in range(instances)]
        body, header_length = binary_request(INPUT_NAMES[kind], chosen, request_id=str(number))
        out.append(Payload(body, CONTENT_TYPE, f"{instances} instances from #{start % len(elements)}",
                           headers=((HEADER_LENGTH, str(header_length)), PROTOCOL_HEADER), instances=instances))
    return out


_CACHE: dict[tuple[str, int], tuple[Payload, ...]] = {}


def oip_payloads_for(spec: ModelSpec, instances: int) -> tuple[Payload, ...]:
    """A model's OIP bodies of `instances` instances, built on first use in this process."""
    key = (spec.name, instances)
    if key not in _CACHE:
        _CACHE[key] = tuple(oip_payloads(kind_of(spec), payloads_for(spec).good, instances))
    return _CACHE[key]
