"""Text input: request body -> normalised text -> character ids -> a packed batch for the RNN."""
from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

from handlers import errors, payload
from handlers.errors import InputError
from handlers.settings import TextSettings

PAD_ID = 0
UNKNOWN_ID = 1


def read_text(body: Any, content_type: str | None, settings: TextSettings) -> str:
    """The text of one request: JSON {"text": "..."}, a text/plain body, or a form's text field."""
    if body is None or (isinstance(body, (bytes, bytearray, str)) and len(body) == 0):
        raise InputError(400, errors.EMPTY_INPUT, 'request body is empty; send JSON {"text": "..."} or text/plain')
    if isinstance(body, (bytes, bytearray)) and len(body) > settings.max_bytes:
        raise InputError(413, errors.PAYLOAD_TOO_LARGE,
                         f"body is {len(body)} bytes; the limit is {settings.max_bytes}")
    mt = payload.media_type(content_type)
    if payload.is_json(content_type, body):
        text = payload.json_field(payload.parse_json(body), "text", str, '{"text": "..."}')
    elif mt.startswith("image/") or mt in ("application/octet-stream",) and _is_binary(body):
        raise InputError(415, errors.UNSUPPORTED_MEDIA_TYPE,
                         f"content type {mt!r} is not text; send JSON {{\"text\": ...}} or text/plain")
    elif mt == payload.FORM_URLENCODED:
        raise InputError(415, errors.UNSUPPORTED_MEDIA_TYPE, payload.FORM_URLENCODED_HINT)
    elif mt and not (mt.startswith("text/") or mt in ("application/octet-stream", payload.MULTIPART_FORM)):
        raise InputError(415, errors.UNSUPPORTED_MEDIA_TYPE,
                         f"content type {mt!r} is not accepted; send JSON {{\"text\": ...}} or text/plain")
    elif isinstance(body, (bytes, bytearray)):
        text = payload.decode_utf8(body, "text")
    elif isinstance(body, str):
        text = body
    else:
        raise InputError(400, errors.INVALID_REQUEST, f"unexpected body of type {type(body).__name__}")
    return text


def _is_binary(body: Any) -> bool:
    return isinstance(body, (bytes, bytearray)) and b"\x00" in bytes(body[:1024])


def normalize_text(text: str, settings: TextSettings) -> str:
    """NFC, lower case; control characters, digits, punctuation and symbols become spaces.

    Only letters (and the apostrophes and hyphens inside words) carry a language signal; the
    model never saw anything else, so it is dropped here rather than fed in as unknowns.
    """
    if len(text) > settings.max_chars:
        raise InputError(413, errors.TEXT_TOO_LONG,
                         f"text has {len(text)} characters; the limit is {settings.max_chars}")
    text = unicodedata.normalize("NFC", text)
    if not "".join(ch for ch in text if unicodedata.category(ch)[0] not in "CZ"):
        raise InputError(400, errors.EMPTY_TEXT, "text is empty after removing whitespace and control characters")
    kept = "".join(ch if ch.isalpha() or ch in "'-" else " " for ch in text)
    words = [w.strip("'-") for w in kept.lower().split()]
    text = " ".join(w for w in words if w)
    if not text:
        raise InputError(422, errors.UNCLASSIFIABLE_TEXT,
                         "text has no letters to classify (only digits, punctuation, symbols or emoji)")
    return text


def encode(text: str, vocab: dict[str, int]) -> torch.Tensor:
    """Character ids; characters the model never saw map to UNKNOWN_ID."""
    ids = [vocab.get(ch, UNKNOWN_ID) for ch in text]
    if all(i == UNKNOWN_ID or ch == " " for i, ch in zip(ids, text)):
        raise InputError(422, errors.UNCLASSIFIABLE_TEXT,
                         "text has no letters this model knows (a script it was not trained on?)")
    return torch.tensor(ids, dtype=torch.long)


def decode_text_request(body: Any, content_type: str | None, settings: TextSettings,
                        vocab: dict[str, int]) -> torch.Tensor:
    return encode(normalize_text(read_text(body, content_type, settings), settings), vocab)


def pack_batch(sequences: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length id sequences -> (padded ids [B, T], lengths [B]) for pack_padded_sequence."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    return pad_sequence(list(sequences), batch_first=True, padding_value=PAD_ID), lengths
