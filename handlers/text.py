"""Text input: judged request -> normalised text -> character ids -> a packed batch for the RNN."""
from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

from handlers import errors, payload
from handlers.errors import InputError
from handlers.inputs import Input, read_body, text_accepts
from handlers.settings import TextSettings

PAD_ID = 0
UNKNOWN_ID = 1


def text_of(request: Input) -> str:
    """The text of a judged request: JSON {"text": "..."}, or the body (a text/plain body or a
    form's text field) as UTF-8."""
    if request.kind == "json":
        return payload.json_field(payload.parse_json(request.body), "text", str, '{"text": "..."}')
    if isinstance(request.body, (bytes, bytearray)):
        return payload.decode_utf8(request.body, "text")
    return request.body


def read_text(body: Any, content_type: str | None, settings: TextSettings) -> str:
    """`text_of` a bare body and its Content-Type, judged by the input stage first."""
    return text_of(read_body(body, content_type, text_accepts(settings.max_bytes)))


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


def decode_text(request: Input, settings: TextSettings, vocab: dict[str, int]) -> torch.Tensor:
    """A judged request -> the character ids the model takes, or InputError."""
    return encode(normalize_text(text_of(request), settings), vocab)


def decode_text_request(body: Any, content_type: str | None, settings: TextSettings,
                        vocab: dict[str, int]) -> torch.Tensor:
    """`decode_text` for a bare body and its Content-Type, judged by the input stage first."""
    return decode_text(read_body(body, content_type, text_accepts(settings.max_bytes)), settings, vocab)


def pack_batch(sequences: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length id sequences -> (padded ids [B, T], lengths [B]) for pack_padded_sequence."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    return pad_sequence(list(sequences), batch_first=True, padding_value=PAD_ID), lengths
