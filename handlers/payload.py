"""Turn one TorchServe request item into (content type, body) and parse JSON envelopes.

TorchServe hands each request to the worker as a dict such as {"body": <value>} (or "data"),
where <value> is raw bytes when `decode_input_request=false` (our config) and may already be a
str / dict when a deployment leaves decoding on. Both are accepted here.
"""
from __future__ import annotations

import base64
import binascii
import json
import types
import urllib.parse
from typing import Any

from handlers import errors
from handlers.errors import InputError

_base64: types.ModuleType
try:
    # SIMD base64 (same API and binascii.Error as the standard library): a 1 MB image in a JSON
    # body decoded in 5.4 ms with base64.b64decode and 0.15 ms here.
    import pybase64 as _base64
except ImportError:  # optional: the standard library gives the same bytes, more slowly
    _base64 = base64

JSON_TYPES = ("application/json", "text/json")
_ASCII_SPACE = " \t\n\r\v\f\x1c\x1d\x1e\x1f"  # every ASCII character str.split() splits on


FORM_URLENCODED = "application/x-www-form-urlencoded"
MULTIPART_FORM = "multipart/form-data"
FORM_TYPES = (FORM_URLENCODED, MULTIPART_FORM)
FORM_FIELD_TYPE = "text/plain; charset=utf-8"  # a form's text field (it has no type of its own)
# Set by the front door (config/front-door.conf.template) when it passed a form-urlencoded body on
# as application/octet-stream, so that TorchServe's frontend does not form-decode it: the client's
# Content-Type.
ORIGINAL_CONTENT_TYPE = "X-Original-Content-Type"


def request_input(item: Any, content_type: str | None, field: str | None = None,
                  sent_as: str | None = None) -> tuple[Any, str | None]:
    """(body, content type) of one request item, whatever key TorchServe put the body under.

    `sent_as` is the front door's X-Original-Content-Type: a form-urlencoded body that arrives
    intact (`form_body`). Without the front door, TorchServe's frontend splits multipart and
    form-urlencoded bodies into fields before the worker sees them, and the item is then
    {field name: value}. `field` names the form field a model reads (langid: "text"); its value
    is text. A form-urlencoded body without that field is refused: the frontend drops whatever has
    no "=" (`curl -d 'bonjour tout le monde'` reaches the worker as an empty dict), so what is left
    cannot be trusted to be what was sent.
    """
    if not isinstance(item, dict):
        return item, content_type
    if media_type(sent_as) == FORM_URLENCODED:
        return form_body(next((item[k] for k in ("body", "data") if item.get(k) is not None), None), field)
    form = media_type(content_type)
    if form in FORM_TYPES and field is not None and item.get(field) is not None:
        return item[field], FORM_FIELD_TYPE
    for key in ("body", "data"):
        if item.get(key) is not None:
            return item[key], content_type
    if form == FORM_URLENCODED:
        raise InputError(415, errors.UNSUPPORTED_MEDIA_TYPE, FORM_URLENCODED_HINT)
    if len(item) == 1:  # a multipart form with a single, arbitrarily named field
        return next(iter(item.values())), content_type
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


def with_form_hint(err: InputError, sent_as: str | None) -> InputError:
    """`err` with what to send instead, for a body the client labelled form-urlencoded: the label
    is usually an accident of curl, and the fix is to name the type."""
    if media_type(sent_as) != FORM_URLENCODED:
        return err
    return InputError(err.code, err.type, f"{err.message}; {FORM_SENT_HINT}")


FORM_URLENCODED_HINT = (
    "the body was sent as application/x-www-form-urlencoded (what curl -d and --data-binary send "
    "without -H), which the server parses into form fields before the model sees it; send it with "
    "its own type: -H 'Content-Type: image/png' (or image/jpeg ...) for an image, "
    "-H 'Content-Type: text/plain' or --data-urlencode 'text=...' for text, or JSON")
FORM_SENT_HINT = (
    "the body was labelled application/x-www-form-urlencoded (what curl -d and --data-binary send "
    "without -H); send it with its own type: -H 'Content-Type: image/png' (or image/jpeg ...) for an "
    "image, -H 'Content-Type: text/plain' or --data-urlencode 'text=...' for text, or JSON with "
    "-H 'Content-Type: application/json'")


def media_type(content_type: str | None) -> str:
    """'application/json; charset=utf-8' -> 'application/json' (lower case, no parameters)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str | None, body: Any) -> bool:
    if isinstance(body, (dict, list)):
        return True
    return media_type(content_type) in JSON_TYPES


def decode_utf8(body: bytes | bytearray, what: str) -> str:
    """UTF-8 bytes -> str, or a 400 invalid_encoding naming the first bad byte."""
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(400, errors.INVALID_ENCODING,
                         f"{what} is not valid UTF-8 (invalid byte at offset {exc.start})") from None


def parse_json(body: Any) -> Any:
    """Parse a JSON request body (bytes or str); dicts/lists that TorchServe decoded pass through."""
    if isinstance(body, (dict, list)):
        return body
    if isinstance(body, (bytes, bytearray)):
        body = decode_utf8(body, "JSON body")
    if not isinstance(body, str) or not body.strip():
        raise InputError(400, errors.EMPTY_INPUT, "request body is empty")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InputError(400, errors.INVALID_JSON, f"body is not valid JSON: {exc}") from None


def json_field(document: Any, field: str, kind: type, example: str) -> Any:
    """`document[field]`, checked to be an object with that field of the given type."""
    if not isinstance(document, dict):
        raise InputError(400, errors.INVALID_REQUEST,
                         f"expected a JSON object like {example}, got {type(document).__name__}")
    if field not in document:
        raise InputError(400, errors.INVALID_REQUEST,
                         f"JSON object has no {field!r} field; expected {example}")
    value = document[field]
    if not isinstance(value, kind):
        raise InputError(400, errors.INVALID_REQUEST,
                         f"field {field!r} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def decode_base64(text: str, max_bytes: int) -> bytes:
    """Strict base64 (standard or URL-safe alphabet, padding optional, data: URL prefix allowed), size-capped."""
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    # Drop line breaks and other whitespace (MIME base64 wraps lines); most bodies have none, and
    # looking for them costs a quarter of rebuilding a megabyte string.
    compact = "".join(text.split()) if not text.isascii() or any(c in text for c in _ASCII_SPACE) else text
    if len(compact) * 3 // 4 > max_bytes:
        raise InputError(413, errors.PAYLOAD_TOO_LARGE,
                         f"base64 payload decodes to more than {max_bytes} bytes")
    if "-" in compact or "_" in compact:
        compact = compact.replace("-", "+").replace("_", "/")
    # Padding is optional on the way in (URL-safe senders drop it) and rebuilt here, so neither a
    # missing nor a surplus "=" decides the answer: the standard library accepted "AAAA=" and
    # pybase64 refused it, and the answer must not depend on which one is installed.
    compact = compact.rstrip("=")
    compact += "=" * (-len(compact) % 4)
    try:
        return _base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(400, errors.INVALID_BASE64, f"'image' is not valid base64: {exc}") from None
