"""The input stage: one request -> one typed `Input`, its body and content type judged once.

Every runtime adapter (TorchServe's handler, the bench's peers, a later Triton adapter) hands
requests here as a `Request`; what comes out says which format the body is in (JSON, text or
bytes), so the image and text decoders only decode. Each client mistake is refused here, with
one hint per mistake (`FORM_LABEL_HINT`, `FORM_FIELD_HINT`).

Forms: TorchServe's frontend splits multipart and form-urlencoded bodies into fields before a
worker sees them (`Request.fields`); the front door instead passes a form-urlencoded body on
intact and names the client's label (`Request.sent_as`), see docs/hostile-inputs.md.
"""
from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any, Literal

from handlers import errors
from handlers.errors import InputError
from handlers.payload import (
    FORM_FIELD_TYPE,
    FORM_TYPES,
    FORM_URLENCODED,
    JSON_TYPES,
    MULTIPART_FORM,
    decode_utf8,
    media_type,
)

IMAGE_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/gif", "image/bmp", "image/x-ms-bmp",
               "image/webp", "image/tiff", "application/octet-stream", ""}

# The mistake: a body labelled form-urlencoded, almost always an accident of curl.
FORM_LABEL_HINT = (
    "the body was labelled application/x-www-form-urlencoded (what curl -d and --data-binary send "
    "without -H); send it with its own type: -H 'Content-Type: image/png' (or image/jpeg ...) for an "
    "image, -H 'Content-Type: text/plain' or --data-urlencode 'text=...' for text, or JSON with "
    "-H 'Content-Type: application/json'")
# The mistake: an image model sent a form's text field instead of a file.
FORM_FIELD_HINT = ("send the image bytes with -H 'Content-Type: image/png' (or image/jpeg ...), as a file "
                   "with -F image=@FILE, or as JSON {\"image\": \"<base64>\"} with -H 'Content-Type: application/json'")
FORM_SPLIT = f"the server split the form into fields before the model saw it; {FORM_LABEL_HINT}"

Kind = Literal["json", "text", "bytes"]


@dataclass(frozen=True)
class Request:
    """One request as a runtime receives it.

    `body`: bytes (or a str, dict or list a server already decoded); `fields`: the request's
    parameters when a server split a form into them (TorchServe's frontend); `sent_as`: the
    client's own Content-Type when a proxy relabelled the body (the front door's
    X-Original-Content-Type).
    """

    body: Any = None
    content_type: str | None = None
    fields: dict[str, Any] | None = None
    sent_as: str | None = None

    @property
    def labelled_form(self) -> bool:
        return media_type(self.sent_as) == FORM_URLENCODED


@dataclass(frozen=True)
class Accepts:
    """What one model takes: the JSON field that carries its input, the form field it reads (text
    models: curl -F text=...; None: a form's text field is a mistake), the limit on a raw body
    checked before anything else (None: the decoder checks its own), and its empty-body message."""

    kind: Literal["image", "text"]
    empty_message: str
    form_field: str | None = None
    max_body: int | None = None


IMAGE = Accepts("image", 'request body is empty; send image bytes or JSON {"image": "<base64>"}')


def text_accepts(max_bytes: int) -> Accepts:
    return Accepts("text", 'request body is empty; send JSON {"text": "..."} or text/plain', "text", max_bytes)


@dataclass(frozen=True)
class Input:
    """A judged request: `kind` says how to read `body` (JSON still unparsed, text still bytes)."""

    kind: Kind
    body: Any
    content_type: str | None


def read_request(request: Request, accepts: Accepts) -> Input:
    """The one judgement of a request, or the InputError that answers it (`with_form_hint` adds
    the hint for a body labelled a form, to this and to the decoder's errors alike)."""
    body, content_type = unpack(request, accepts.form_field)
    return judge(body, content_type, accepts)


def read_body(body: Any, content_type: str | None, accepts: Accepts) -> Input:
    """`read_request` for a bare body and its Content-Type (the decoders' convenience functions)."""
    return read_request(Request(body, content_type), accepts)


def with_form_hint(err: InputError, request: Request) -> InputError:
    """`err` with what to send instead, for a body the client labelled form-urlencoded: the label
    is usually an accident of curl, and the fix is to name the type."""
    if not request.labelled_form:
        return err
    return InputError(err.code, err.type, f"{err.message}; {FORM_LABEL_HINT}")


def unpack(request: Request, field: str | None) -> tuple[Any, str | None]:
    """(body, content type) of a request, whichever way a form reached it.

    A form-urlencoded body that arrives intact (`sent_as`) is read by `form_body`. A split form
    gives the model's `field` (langid: "text") as text. A form-urlencoded body without that field
    is refused: the frontend drops whatever has no "=" (`curl -d 'bonjour tout le monde'` reaches
    the worker as no field at all), so what is left cannot be trusted to be what was sent.
    """
    if request.labelled_form:
        return form_body(request.body, field)
    fields, content_type = request.fields, request.content_type
    if fields is None:
        return request.body, content_type
    form = media_type(content_type)
    if form in FORM_TYPES and field is not None and fields.get(field) is not None:
        return fields[field], FORM_FIELD_TYPE
    if request.body is not None:
        return request.body, content_type
    if form == FORM_URLENCODED:
        raise InputError(415, errors.UNSUPPORTED_MEDIA_TYPE, FORM_SPLIT)
    if len(fields) == 1:  # a multipart form with a single, arbitrarily named field
        return next(iter(fields.values())), content_type
    return None, content_type


def form_body(body: Any, field: str | None) -> tuple[Any, str]:
    """(body, content type) of a body the client labelled form-urlencoded, as it was sent.

    curl labels every `-d` and `--data-binary` body so unless told otherwise, so the label says
    little: image models read the bytes as any unlabelled body (an image, or JSON with base64);
    text models read their field when the body is a form that has it
    (`--data-urlencode 'text=...'`), JSON when it is a JSON object, and the whole body as text
    otherwise (`curl -d 'bonjour tout le monde'`, `-d 'E=mc2'`).
    """
    if field is None or not isinstance(body, (bytes, bytearray, str)):
        return body, "application/octet-stream"
    raw = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body)
    if raw.lstrip().startswith(b"{"):
        return raw, JSON_TYPES[0]
    value = form_value(raw, field)
    return (raw if value is None else value), FORM_FIELD_TYPE


def form_value(body: bytes, field: str) -> str | None:
    """`field`'s value when `body` is a form that has it ("text=bonjour+tout" -> "bonjour tout")."""
    if f"{field}=".encode() not in body:
        return None
    try:
        pairs = urllib.parse.parse_qsl(decode_utf8(body, "form body"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise InputError(400, errors.INVALID_ENCODING,
                         f"form field {field!r} is not valid UTF-8 once %-decoded ({exc.reason})") from None
    return next((value for name, value in pairs if name == field), None)


def judge(body: Any, content_type: str | None, accepts: Accepts) -> Input:
    """Which format `body` is in for this model, or the 4xx that refuses it."""
    mt = media_type(content_type)
    if body is None or (isinstance(body, (bytes, bytearray, str)) and len(body) == 0):
        raise InputError(400, errors.EMPTY_INPUT, accepts.empty_message)
    if accepts.max_body is not None and isinstance(body, (bytes, bytearray)) and len(body) > accepts.max_body:
        raise InputError(413, errors.PAYLOAD_TOO_LARGE, f"body is {len(body)} bytes; the limit is {accepts.max_body}")
    if accepts.kind == "image":
        if mt == FORM_URLENCODED:
            raise InputError(415, errors.UNSUPPORTED_MEDIA_TYPE, FORM_SPLIT)
        if mt == MULTIPART_FORM:
            # A file part carries its own type (image/*, or curl's application/octet-stream); this
            # is a text field.
            raise InputError(415, errors.UNSUPPORTED_MEDIA_TYPE, f"a form text field is not an image: {FORM_FIELD_HINT}")
    # A body starting with "{" cannot be an image, whatever its label; for a text model it is text.
    if isinstance(body, (dict, list)) or mt in JSON_TYPES or (accepts.kind == "image" and _looks_like_json(body)):
        return Input("json", body, content_type)
    return _image_input(body, content_type) if accepts.kind == "image" else _text_input(body, content_type)


def _image_input(body: Any, content_type: str | None) -> Input:
    mt = media_type(content_type)
    if isinstance(body, str):
        raise InputError(415, errors.UNSUPPORTED_MEDIA_TYPE,
                         f"expected image bytes or JSON, got text ({mt or 'no content type'})")
    if mt.startswith("text/") or (mt and mt not in IMAGE_TYPES and not mt.startswith("image/")):
        raise InputError(415, errors.UNSUPPORTED_MEDIA_TYPE,
                         f"content type {mt!r} is not an image; send image/* bytes or application/json")
    return Input("bytes", body, content_type)


def _text_input(body: Any, content_type: str | None) -> Input:
    mt = media_type(content_type)
    if mt.startswith("image/") or mt in ("application/octet-stream",) and _is_binary(body):
        raise InputError(415, errors.UNSUPPORTED_MEDIA_TYPE,
                         f"content type {mt!r} is not text; send JSON {{\"text\": ...}} or text/plain")
    if mt == FORM_URLENCODED:
        raise InputError(415, errors.UNSUPPORTED_MEDIA_TYPE, FORM_SPLIT)
    if mt and not (mt.startswith("text/") or mt in ("application/octet-stream", MULTIPART_FORM)):
        raise InputError(415, errors.UNSUPPORTED_MEDIA_TYPE,
                         f"content type {mt!r} is not accepted; send JSON {{\"text\": ...}} or text/plain")
    if not isinstance(body, (bytes, bytearray, str)):
        raise InputError(400, errors.INVALID_REQUEST, f"unexpected body of type {type(body).__name__}")
    return Input("text", body, content_type)


def _looks_like_json(body: Any) -> bool:
    if isinstance(body, (bytes, bytearray)):
        return bytes(body[:64]).lstrip().startswith(b"{")
    return isinstance(body, str) and body.lstrip().startswith("{")


def _is_binary(body: Any) -> bool:
    return isinstance(body, (bytes, bytearray)) and b"\x00" in bytes(body[:1024])
