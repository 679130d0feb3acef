"""Open Inference Protocol (v2) request bodies for the load test and the bench, built once.

Each body is one `POST /v2/models/<m>/infer` carrying N instances in the binary tensor data
extension, byte for byte what `tritonclient.http` sends for them (tests/unit/test_oip_bodies.py
compares it with tritonclient's own `generate_request_body` and reads it back with its
deserializer): a JSON header (its length in `Inference-Header-Content-Length`), then per element a
4-byte little-endian length and the bytes (handlers/oip.py's `serialize_bytes`); both outputs
asked back as binary, as tritonclient asks by default.

The instances are the model's own load-test bodies (payloads.py, from the spec's `load:` section),
interleaved across the requests (`instance_groups`): an image body's encoded file, a text body's UTF-8 text (a JSON
envelope `{"image": <base64>}` / `{"text": ...}` is unwrapped to the element it carries).
"""
from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence

from handlers import oip_contract
from handlers.oip import serialize_bytes
from loadtest.payloads import kind_of, payloads_for
from loadtest.request_body import Payload
from stackctl.catalog.specs import ModelSpec

CONTENT_TYPE = oip_contract.BINARY_CONTENT_TYPE
HEADER_LENGTH = oip_contract.HEADER_LENGTH_HEADER
# TorchServe routes /v2/models/<m>/infer to the handler itself; this header tells our handler the
# body is OIP. The front door sets it on that path whatever the client sent, so the load test may
# always send it; the bench talks to TorchServe directly and must.
PROTOCOL_HEADER = (oip_contract.PROTOCOL_HEADER, oip_contract.PROTOCOL_VALUE)
# Uncompressed answers, as tritonclient.http gets them unless asked (it sends no Accept-Encoding):
# Locust's FastHttpUser asks for gzip by default, which the front door gives v2 answers over 1 kB.
IDENTITY = ("Accept-Encoding", "identity")
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
    """(body, JSON header length) of one binary-extension request with `elements` as a BYTES [N] input,
    both outputs asked back as binary: byte for byte what tritonclient.http's
    `InferenceServerClient.generate_request_body` writes (the unit tests compare the two), built
    without it so the load generator's image needs no tritonclient."""
    data = serialize_bytes(elements)
    document: dict[str, object] = {"id": request_id} if request_id else {}
    document["inputs"] = [{"name": input_name, "shape": [len(elements)], "datatype": "BYTES",
                           "parameters": {"binary_data_size": len(data)}}]
    document["outputs"] = [{"name": name, "parameters": {"binary_data": True}} for name in oip_contract.OUTPUT_NAMES]
    header = json.dumps(document, separators=(",", ":")).encode("utf-8")
    return header + data, len(header)


def instance_groups(singles: Sequence[Payload], instances: int) -> list[list[bytes]]:
    """The elements of each request of `instances` instances, from a model's single-item bodies: as
    many requests as it takes to use every single at least once (at least MIN_BODIES), request b
    taking singles b, b + B, b + 2B, ... (B requests, wrapped round). Interleaved, not consecutive,
    because the singles come grouped by size and format: digits' eight 1 MB BMPs side by side would
    make one 8-instance body larger than TorchServe's max_request_size (8 MiB) and get 413."""
    if instances < 1:
        raise ValueError(f"instances per request must be >= 1, got {instances}")
    if not singles:
        raise ValueError("no single-item bodies to build OIP requests from")
    elements = [element(p) for p in singles]
    count = max(MIN_BODIES, math.ceil(len(singles) / instances))
    return [[elements[(number + j * count) % len(elements)] for j in range(instances)] for number in range(count)]


def oip_payloads(kind: str, singles: Sequence[Payload], instances: int) -> list[Payload]:
    """One binary-extension body per group of `instance_groups`, its request id its number."""
    out = []
    for number, chosen in enumerate(instance_groups(singles, instances)):
        body, header_length = binary_request(oip_contract.input_tensor(kind).name, chosen,  # type: ignore[arg-type]
                                             request_id=str(number))
        out.append(Payload(body, CONTENT_TYPE, f"request {number} of {instances} instances",
                           headers=((HEADER_LENGTH, str(header_length)), PROTOCOL_HEADER, IDENTITY),
                           instances=instances))
    return out


_CACHE: dict[tuple[str, int], tuple[Payload, ...]] = {}


def oip_payloads_for(spec: ModelSpec, instances: int) -> tuple[Payload, ...]:
    """A model's OIP bodies of `instances` instances, built on first use in this process."""
    key = (spec.name, instances)
    if key not in _CACHE:
        _CACHE[key] = tuple(oip_payloads(kind_of(spec), payloads_for(spec).good, instances))
    return _CACHE[key]
