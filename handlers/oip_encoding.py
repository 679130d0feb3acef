"""A v2 infer request's `Content-Encoding`: the body a client compressed, decoded before the codec
reads it, never past the body limit.

tritonclient.http compresses the whole body with `request_compression_algorithm` ('gzip':
gzip.compress; 'deflate': zlib.compress, the zlib format HTTP's "deflate" names) and keeps
`Inference-Header-Content-Length` as the length of the JSON header before compression. nginx
cannot decode a request body without extra modules and TorchServe's frontend passes it on as it
is, so the handler decodes it here, first, and the codec (`handlers/oip.py`) sees the body it
would have seen uncompressed.

The front door's limit (`max_request_size`) bounds the compressed body only; a few kilobytes of
gzip can decode to gigabytes. The decoded body gets the same limit (TS_MAX_REQUEST_SIZE, as the
worker inherits TorchServe's environment, else config.properties' 8 MiB): decoding stops one byte
past it and the request gets 413, so a decompression bomb never costs more than that in memory.
"""
from __future__ import annotations

import os
import zlib
from typing import Any

from handlers import errors

ENCODING_HEADER = "Content-Encoding"
MAX_SIZE_ENV = "TS_MAX_REQUEST_SIZE"
DEFAULT_MAX_SIZE = 8388608  # config/config.properties max_request_size (a unit test checks they agree)
# zlib's wbits per coding: 16 + 15 reads the gzip wrapper, 15 the zlib one.
WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
IDENTITY = ("", "identity")
SUPPORTED = "gzip, deflate or identity"


class EncodingError(Exception):
    """A body its Content-Encoding cannot give: `code` (400, 413 or 415) with `message`."""

    def __init__(self, code: int, error_type: str, message: str):
        super().__init__(message)
        self.code, self.type, self.message = code, error_type, message


def max_size() -> int:
    """The most bytes a decoded body may have: the server's max_request_size."""
    value = os.environ.get(MAX_SIZE_ENV, "").strip()
    return int(value) if value.isdigit() else DEFAULT_MAX_SIZE


def decode_body(body: Any, encoding: str | None, limit: int | None = None) -> Any:
    """`body` as sent before its Content-Encoding, or EncodingError. An absent or identity
    encoding, or a body that is not bytes (a server already decoded it), is handed on as it is."""
    coding = (encoding or "").strip().lower()
    if coding in IDENTITY:
        return body
    if coding not in WBITS:
        raise EncodingError(415, errors.UNSUPPORTED_MEDIA_TYPE,
                            f"Content-Encoding {encoding!r} is not supported; send {SUPPORTED}")
    if not isinstance(body, (bytes, bytearray)):
        return body
    limit = max_size() if limit is None else limit
    decoded, data = bytearray(), bytes(body)
    while True:  # gzip allows several members one after the other (RFC 1952), zlib one stream
        decoder = zlib.decompressobj(WBITS[coding])
        try:
            decoded += decoder.decompress(data, limit + 1 - len(decoded))
        except zlib.error as exc:
            raise invalid(coding, encoding, str(exc)) from None
        if len(decoded) > limit:
            raise EncodingError(413, errors.PAYLOAD_TOO_LARGE,
                                f"the request body decompresses to more than {limit} bytes (max_request_size)")
        if not decoder.eof:
            raise invalid(coding, encoding, "it ends early")
        data = decoder.unused_data
        if not data:
            return bytes(decoded)
        if coding == "deflate":
            raise invalid(coding, encoding, f"{len(data)} bytes follow its end")


def invalid(coding: str, encoding: str | None, why: str) -> EncodingError:
    return EncodingError(400, errors.INVALID_REQUEST,
                         f"the request body is not valid {coding} data (Content-Encoding: {encoding}): {why}")
