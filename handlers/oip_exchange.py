"""One Open Inference Protocol (v2) infer request over the model core, runtime-neutral.

`Exchange` reads the request with the codec (`handlers/oip.py`), hands the core its elements as
an `Instances` of ordinary `Request`s, each the body a /predictions client would send for that
input (so every instance is judged and decoded by the same input stage and decoder, and answers
the same), and turns the core's `Result` into the v2 response: outputs `label` and
`probability`, or the v2 error shape {"error": "..."}.

How an element becomes a /predictions body:
- image, binary: the file's bytes, as `application/octet-stream`;
- image, JSON: the base64 string, as the JSON body {"image": "<base64>"};
- text, binary: the UTF-8 bytes, as `text/plain; charset=utf-8`;
- text, JSON: the string, as the JSON body {"text": "..."}.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from handlers import oip
from handlers.core import Instances, Result
from handlers.errors import InputError
from handlers.inputs import Request
from handlers.oip_contract import JSON_CONTENT_TYPE, Kind
from handlers.oip_encoding import EncodingError, decode_body

TEXT_TYPE = "text/plain; charset=utf-8"
BYTES_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class Reply:
    """What the adapter sends back for one request: status, body (bytes, or a JSON document the
    runtime serialises: /predictions answers), content type, extra headers."""

    status: int
    body: bytes | dict[str, Any]
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def instance_request(element: str | bytes, kind: Kind) -> Request:
    """The /predictions request a client would send for one element of the input tensor."""
    if isinstance(element, str):
        return Request({kind: element}, JSON_CONTENT_TYPE)
    return Request(element, BYTES_TYPE if kind == "image" else TEXT_TYPE)


class Exchange:
    """One v2 infer request: `item` for the core, `reply` from the core's answer."""

    def __init__(self, body: Any, header_length: Any, kind: Kind, top_k: int, encoding: str | None = None):
        """`encoding`: the request's Content-Encoding (handlers/oip_encoding.py), decoded first."""
        self.kind = kind
        self.request: oip.InferRequest | None = None
        self.refused: InputError | None = None
        try:
            self.request = oip.parse_request(decode_body(body, encoding), header_length, kind, top_k)
        except EncodingError as err:
            self.refused = InputError(err.code, err.type, err.message)
        except oip.OipError as err:
            self.refused = InputError(400, err.type, err.message)

    @property
    def item(self) -> Instances:
        """The core's view: one Request per element, or the refusal of a malformed request."""
        if self.request is None:
            return Instances(refused=self.refused)
        return Instances(tuple(instance_request(element, self.kind) for element in self.request.elements))

    def reply(self, result: Result, model_name: str, model_version: str) -> Reply:
        """The v2 response for the core's answer to `item`."""
        if result.status != 200 or self.request is None:
            return error_reply(result)
        k = self.request.top_k
        ranked = [answer["top_k"][:k] for answer in result.body["answers"]]
        labels = [[entry["label"] for entry in row] for row in ranked]
        probabilities = [[entry["probability"] for entry in row] for row in ranked]
        encoded = oip.encode_response(model_name, model_version, self.request, labels, probabilities)
        return Reply(200, encoded.body, encoded.content_type, encoded.headers)


def error_reply(result: Result) -> Reply:
    """The core's error answer in the v2 shape: {"error": "<its message>"}, same status."""
    error = result.body.get("error")
    message = error.get("message") if isinstance(error, dict) else str(error)
    return Reply(result.status, oip.error_body(str(message)), JSON_CONTENT_TYPE)
