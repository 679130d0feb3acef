"""Payloads: real held-out digits in every spec'd size/format/polarity, texts with a long tail."""
from __future__ import annotations

import base64
import collections
import io
import json
import random
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from handlers.sections import override
from handlers.settings import HandlerSettings
from loadtest import payloads, text_bodies
from stackctl.catalog.specs import LoadSettings, get_spec


@pytest.fixture(scope="module")
def digits_spec():
    return get_spec("digits")


@pytest.fixture(scope="module")
def langid_spec():
    return get_spec("langid")


@pytest.fixture(scope="module")
def digit_payloads(digits_spec):
    return payloads.payloads_for(digits_spec)


@pytest.fixture(scope="module")
def text_payloads(langid_spec):
    return payloads.payloads_for(langid_spec)


def decode(p: payloads.Payload) -> Image.Image:
    data = base64.b64decode(json.loads(p.body)["image"]) if p.content_type == "application/json" else p.body
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_payload_kind_follows_the_handler_settings(digits_spec, langid_spec):
    assert payloads.kind_of(digits_spec) == "image" and payloads.kind_of(langid_spec) == "text"
    with pytest.raises(ValueError, match="neither"):
        payloads.kind_of(replace(digits_spec, handler=HandlerSettings()))


def test_every_size_and_format_of_the_spec_is_a_decodable_image(digits_spec, digit_payloads):
    sizes, formats = set(digits_spec.load.image_sizes), set(digits_spec.load.image_formats)
    seen = collections.Counter()
    for p in digit_payloads.good:
        image = decode(p)
        assert image.size[0] == image.size[1] and image.size[0] in sizes
        assert image.format.lower().replace("jpeg", "jpeg") in {f.replace("jpg", "jpeg") for f in formats}
        seen[(image.size[0], image.format)] += 1
        assert p.label in {str(d) for d in range(10)} and not p.is_bad
    assert len(seen) == len(sizes) * len(formats)
    kinds = {p.content_type for p in digit_payloads.good}
    assert "application/json" in kinds and {"image/png", "image/jpeg", "image/webp", "image/bmp", "image/gif"} <= kinds


def test_both_polarities_are_present(digit_payloads):
    means = [np.asarray(decode(p).convert("L"), dtype=float).mean() for p in digit_payloads.good]
    assert min(means) < 80 and max(means) > 175  # light ink on dark, and dark ink on light


def test_digits_come_from_the_training_module_held_out_split():
    from models import digits
    images, labels = payloads.held_out_digits()
    expected_images, expected_labels = digits.held_out_digits()
    assert np.array_equal(images, np.asarray(expected_images, dtype=np.float32).reshape(-1, 8, 8))
    assert np.array_equal(labels, expected_labels)


def test_rendered_digit_keeps_the_ink(digit_payloads):
    image = payloads.render_digit(np.full((8, 8), 16.0), 64, light_on_dark=False, rng=random.Random(0))
    pixels = np.asarray(image)
    assert image.size == (64, 64) and pixels.min() < 20 and pixels.max() > 235  # dark glyph on white margin


def test_payloads_are_built_once_per_process(digits_spec, digit_payloads):
    assert payloads.payloads_for(digits_spec) is digit_payloads


def test_texts_fit_the_limit_and_have_a_long_tail(langid_spec, text_payloads):
    max_chars = langid_spec.handler.text.max_chars
    texts = []
    for p in text_payloads.good:
        text = json.loads(p.body)["text"] if p.content_type == "application/json" else p.body.decode("utf-8")
        assert 0 < len(text) <= max_chars and text == text.strip()
        texts.append(text)
    words = np.array([len(t.split()) for t in texts])
    assert (words == 1).mean() > 0.3                       # mostly single words...
    assert np.percentile(words, 50) <= 2
    assert words.max() >= 20 and (words >= 13).mean() > 0.03  # ...and a long tail
    assert max(len(t) for t in texts) > max_chars * 0.8
    assert {p.content_type for p in text_payloads.good} == {"application/json", "text/plain; charset=utf-8"}


def test_every_language_is_sent(text_payloads):
    from models.langid import LABELS
    assert {p.label for p in text_payloads.good} == set(LABELS)


def test_text_length_mix_can_come_from_the_spec(langid_spec):
    spec = replace(langid_spec, load=override(langid_spec.load, text_words=({"words": 3, "share": 1},)))
    assert text_bodies.text_length_mix(spec) == [(3, 3, 1.0)]
    got = text_bodies.text_payloads(spec, count=50)
    assert all(len((json.loads(p.body)["text"] if p.content_type == "application/json"
                    else p.body.decode()).split()) == 3 for p in got)
    with pytest.raises(ValueError):
        text_bodies.text_length_mix(replace(spec, load=LoadSettings.from_config({"text_words": [{"words": [5, 2], "share": 1}]})))


def test_make_text_cuts_at_a_word_boundary():
    text = text_bodies.make_text(["abcd"] * 10, 100, max_chars=12, rng=random.Random(1))
    assert text == "abcd abcd"


@pytest.mark.parametrize("model", ["digits", "langid"])
def test_bad_payloads_name_the_4xx_they_expect(model):
    bad = payloads.payloads_for(get_spec(model)).bad
    assert bad and all(p.is_bad and 400 <= p.expect_status < 500 and p.expect_error for p in bad)
    assert len({p.label for p in bad}) == len(bad)


def test_too_long_text_is_longer_than_the_spec_limit(langid_spec, text_payloads):
    (too_long,) = [p for p in text_payloads.bad if p.expect_error == "text_too_long"]
    assert len(json.loads(too_long.body)["text"]) > langid_spec.handler.text.max_chars


def test_image_sizes_may_be_weighted(digits_spec):
    spec = replace(digits_spec, load=LoadSettings.from_config({"image_sizes": {8: 2, 28: 1}, "image_formats": ["png"]}))
    sizes = collections.Counter(decode(p).size[0] for p in payloads.image_payloads(spec, variants=2))
    assert sizes == {8: 8, 28: 4}  # weight x variants x 2 polarities
    with pytest.raises(ValueError, match="tiff"):
        payloads.image_payloads(replace(spec, load=LoadSettings.from_config({"image_formats": ["tiff"]})))
