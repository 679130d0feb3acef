"""Text reading, normalisation, encoding and packing, without a server."""
from __future__ import annotations

import pytest
import torch

from handlers.errors import InputError
from handlers.text import TextSettings, decode_text_request, encode, normalize_text, pack_batch, read_text

SETTINGS = TextSettings(max_chars=20, max_bytes=200)
VOCAB = {ch: i + 2 for i, ch in enumerate(" abcdefghijklmnopqrstuvwxyzäöüé")}


@pytest.mark.parametrize("body,content_type,expected", [
    (b'{"text": "Hallo"}', "application/json", "Hallo"),
    ({"text": "Hallo"}, "application/json", "Hallo"),             # TorchServe already decoded it
    (b"Hallo", "text/plain", "Hallo"),
    (b"Hallo", "text/plain; charset=utf-8", "Hallo"),
    ("Hallo", "text/plain", "Hallo"),
    (b"Hallo", None, "Hallo"),
])
def test_accepted_envelopes(body, content_type, expected) -> None:
    assert read_text(body, content_type, SETTINGS) == expected


@pytest.mark.parametrize("body,content_type,code,error_type", [
    (b"", "text/plain", 400, "empty_input"),
    (b"\xff\xfe\x00bad", "text/plain", 400, "invalid_encoding"),
    (b'{"text": 3}', "application/json", 400, "invalid_request"),
    (b'{"txt": "a"}', "application/json", 400, "invalid_request"),
    (b'"just a string"', "application/json", 400, "invalid_request"),
    (b'{"text": "a"', "application/json", 400, "invalid_json"),
    (b"\x89PNG....", "image/png", 415, "unsupported_media_type"),
    (b"x" * 201, "text/plain", 413, "payload_too_large"),
])
def test_bad_envelopes(body, content_type, code, error_type) -> None:
    with pytest.raises(InputError) as err:
        read_text(body, content_type, SETTINGS)
    assert (err.value.code, err.value.type) == (code, error_type)


def test_normalisation_lowercases_and_drops_control_characters() -> None:
    assert normalize_text("  Grüße\x00\tAUS\n\u200bBerlin! ", TextSettings()) == "grüße aus berlin"
    assert normalize_text("C'est l'été, 2024 -- n'est-ce pas?", TextSettings()) == "c'est l'été n'est-ce pas"
    assert normalize_text("e\u0301te", TextSettings()) == "\u00e9te"  # NFC


def test_limits_and_empty_text() -> None:
    with pytest.raises(InputError) as err:
        normalize_text("a" * 21, SETTINGS)
    assert (err.value.code, err.value.type) == (413, "text_too_long")
    with pytest.raises(InputError) as err:
        normalize_text(" \x00\t ", SETTINGS)
    assert err.value.type == "empty_text"


def test_unknown_characters_map_to_unknown_and_emoji_only_is_unclassifiable() -> None:
    assert encode("ab\u4e2d", VOCAB).tolist() == [VOCAB["a"], VOCAB["b"], 1]
    for text in ("\U0001f600 \U0001f680", "12345 !!!", "\u4e2d\u6587"):
        with pytest.raises(InputError) as err:
            decode_text_request(text, "text/plain", TextSettings(), VOCAB)
        assert (err.value.code, err.value.type) == (422, "unclassifiable_text"), text


def test_pack_batch_pads_with_zero_and_keeps_lengths_in_order() -> None:
    ids, lengths = pack_batch([torch.tensor([5, 6, 7]), torch.tensor([8]), torch.tensor([9, 10])])
    assert lengths.tolist() == [3, 1, 2]
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
