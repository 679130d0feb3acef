"""Per-item input errors and the JSON body every 4xx answer carries.

An `InputError` raised while decoding one request of a batch becomes that request's own 4xx;
the other requests in the batch are answered normally.
"""
from __future__ import annotations

from http import HTTPStatus
from typing import Any


class InputError(Exception):
    """A request the model cannot answer because of its input (always a 4xx)."""

    def __init__(self, code: int, error_type: str, message: str):
        if not 400 <= code < 500:
            raise ValueError(f"InputError is for 4xx answers, got {code}")
        super().__init__(message)
        self.code = code
        self.type = error_type
        self.message = message

    @property
    def phrase(self) -> str:
        return HTTPStatus(self.code).phrase

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.type, self.message)


def error_body(code: int, error_type: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "type": error_type, "message": message}}


# The machine-readable error types (the `type` field). Kept in one place so docs and tests agree.
EMPTY_INPUT = "empty_input"
INVALID_JSON = "invalid_json"
INVALID_REQUEST = "invalid_request"
INVALID_BASE64 = "invalid_base64"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
INVALID_IMAGE = "invalid_image"
IMAGE_TOO_LARGE = "image_too_large"
IMAGE_TOO_SMALL = "image_too_small"
PAYLOAD_TOO_LARGE = "payload_too_large"
INVALID_ENCODING = "invalid_encoding"
EMPTY_TEXT = "empty_text"
TEXT_TOO_LONG = "text_too_long"
UNCLASSIFIABLE_TEXT = "unclassifiable_text"

ERROR_TYPES = (EMPTY_INPUT, INVALID_JSON, INVALID_REQUEST, INVALID_BASE64, UNSUPPORTED_MEDIA_TYPE,
               INVALID_IMAGE, IMAGE_TOO_LARGE, IMAGE_TOO_SMALL, PAYLOAD_TOO_LARGE,
               INVALID_ENCODING, EMPTY_TEXT, TEXT_TOO_LONG, UNCLASSIFIABLE_TEXT)
