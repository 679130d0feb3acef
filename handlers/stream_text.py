"""Text read in chunks: each chunk's characters, joined to what its sequence has read so far.

`handlers.text.normalize_text` works on a whole text (it strips and collapses spaces at both
ends), so normalising each chunk with it would make the answer depend on where the chunks were cut
("hello " + "world" would read "helloworld"). Here a chunk maps character by character (NFC,
lower case, letters and the apostrophes and hyphens of words kept, everything else a separator),
and the one thing that crosses a chunk boundary, a separator still to be written, is kept in the
sequence's `Reading`. So any cut of a text reads exactly the characters the whole text reads.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import torch

from handlers import errors
from handlers.errors import InputError
from handlers.inputs import Input
from handlers.settings import TextSettings
from handlers.text import UNKNOWN_ID, text_of

SEPARATOR = " "


@dataclass(frozen=True)
class Reading:
    """Where a sequence's text stands between chunks."""

    chars: int = 0                 # characters fed to the model so far
    separator_due: bool = False    # a separator was read and is written before the next letter


def chunk_chars(text: str, settings: TextSettings) -> str:
    """One chunk's characters, each a letter (or ' -) or the separator; nothing is dropped yet."""
    if len(text) > settings.max_chars:
        raise InputError(413, errors.TEXT_TOO_LONG,
                         f"chunk has {len(text)} characters; the limit is {settings.max_chars} per chunk")
    text = unicodedata.normalize("NFC", text).lower()
    return "".join(ch if ch.isalpha() or ch in "'-" else SEPARATOR for ch in text)


def decode_chunk(request: Input, settings: TextSettings) -> str:
    """A judged request -> its chunk's characters, or InputError."""
    return chunk_chars(text_of(request), settings)


def continue_reading(reading: Reading, chars: str) -> tuple[str, Reading]:
    """The characters to feed the model for a chunk, and the reading after it: runs of
    separators become one, written only between letters (never first, never last)."""
    fed: list[str] = []
    due, count = reading.separator_due, reading.chars
    for ch in chars:
        if ch == SEPARATOR:
            due = count + len(fed) > 0
            continue
        if due:
            fed.append(SEPARATOR)
            due = False
        fed.append(ch)
    return "".join(fed), Reading(count + len(fed), due)


def encode_chars(chars: str, vocab: dict[str, int]) -> torch.Tensor:
    """Character ids; a character the model never saw is UNKNOWN_ID (it still moves the state)."""
    return torch.tensor([vocab.get(ch, UNKNOWN_ID) for ch in chars], dtype=torch.long)
