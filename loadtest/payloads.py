"""Request bodies for the load test, built once per process from real data.

- Image models (a spec with `handler.image`): held-out scikit-learn digits rendered at every size in
  `load.image_sizes` and every format in `load.image_formats`, in both polarities (light ink on dark,
  dark ink on light), sent as raw bytes or as JSON {"image": "<base64>"}.
- Text models (a spec with `handler.text`): words and short texts drawn from the Debian word lists,
  with a spread of lengths (mostly single words, a long tail up to `handler.text.max_chars`), sent
  as JSON {"text": ...} or text/plain.
- Deliberately bad requests for either kind, each with the 4xx status and error type the server
  must answer (used only when the bad-request share is above zero).

Everything is seeded, so every process (and every Locust worker) builds the same bodies.
"""
from __future__ import annotations

import base64
import functools
import io
import json
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from stackctl.specs import ModelSpec

SEED = 20240611
DICT_DIR = Path(os.environ.get("LOADTEST_DICT_DIR", "/usr/share/dict"))
log = logging.getLogger("loadtest")
WORDS_PER_LANGUAGE = 3000
TEXTS_PER_PROCESS = 2000
# Requests by number of words: (fewest, most, share). Mostly single words and short phrases,
# with a long tail that reaches the handler's character limit. A spec may replace it with
# `load.text_words: [{words: [lo, hi], share: s}, ...]`.
DEFAULT_TEXT_WORDS: tuple[tuple[int, int, float], ...] = (
    (1, 1, 0.45), (2, 4, 0.25), (5, 12, 0.17), (13, 30, 0.09), (31, 80, 0.04))
IMAGE_VARIANTS = 4            # held-out digits per (size, format, polarity)
JSON_EVERY = 4                # every 4th body is a JSON envelope instead of raw bytes / text
FORMATS = {  # spec name -> (Pillow format, content type, save options)
    "png": ("PNG", "image/png", {}),
    "jpeg": ("JPEG", "image/jpeg", {"quality": 90}),
    "jpg": ("JPEG", "image/jpeg", {"quality": 90}),
    "webp": ("WEBP", "image/webp", {"quality": 90}),
    "bmp": ("BMP", "image/bmp", {}),
    "gif": ("GIF", "image/gif", {}),
}


@dataclass(frozen=True)
class Payload:
    """One request body. `expect_status`/`expect_error` are set for deliberately bad requests."""

    body: bytes
    content_type: str
    label: str                      # what the body holds (digit, language, or the bad case's name)
    expect_status: int | None = None
    expect_error: str | None = None

    @property
    def is_bad(self) -> bool:
        return self.expect_status is not None


def kind_of(spec: ModelSpec) -> str:
    """'image' or 'text': which payload generator a model needs, from its handler settings."""
    for kind in ("image", "text"):
        if kind in spec.handler_config:
            return kind
    raise ValueError(f"model {spec.name!r}: its spec has neither handler.image nor handler.text, "
                     "so the load test cannot build payloads for it")


# --- images ----------------------------------------------------------------------------------

def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """Held-out 8x8 digits (values 0..16) and labels: the images training never saw."""
    try:
        from models.digits import held_out_digits as training_split  # the one definition of the split
    except ImportError as exc:  # e.g. a slim load-generator image without torch
        log.warning("models.digits unavailable (%s): using scikit-learn's last 20%% of digits, "
                    "which may include training images", exc)
        return _last_fifth_of_digits()
    images, labels = training_split()
    return np.asarray(images, dtype=np.float32).reshape(-1, 8, 8), np.asarray(labels)


def _last_fifth_of_digits() -> tuple[np.ndarray, np.ndarray]:
    # scikit-learn's copy of the data set read directly (same rows as load_digits()), without
    # importing sklearn.datasets, which costs seconds per Locust process.
    import importlib.util
    origin = importlib.util.find_spec("sklearn").origin  # type: ignore[union-attr]
    table = np.loadtxt(Path(origin).parent / "datasets" / "data" / "digits.csv.gz", delimiter=",")
    start = int(len(table) * 0.8)
    return table[start:, :-1].reshape(-1, 8, 8).astype(np.float32), table[start:, -1].astype(int)


def render_digit(digit: np.ndarray, size: int, light_on_dark: bool, rng: random.Random) -> Image.Image:
    """An 8x8 digit (0..16) as a `size`x`size` grey image; above 8 px the digit fills 60-90% of
    the canvas at a random offset, like a crop from a scanned form."""
    ink = Image.fromarray((np.clip(digit, 0, 16) * (255 / 16)).astype(np.uint8), mode="L")
    if size <= 8:
        image = ink.resize((size, size), Image.Resampling.BILINEAR)
    else:
        side = max(8, int(size * rng.uniform(0.6, 0.9)))
        glyph = ink.resize((side, side), Image.Resampling.BILINEAR)
        image = Image.new("L", (size, size), 0)
        image.paste(glyph, (rng.randint(0, size - side), rng.randint(0, size - side)))
    if not light_on_dark:
        image = Image.eval(image, lambda v: 255 - v)
    return image


def encode_image(image: Image.Image, fmt: str) -> tuple[bytes, str]:
    pil_format, content_type, options = FORMATS[fmt]
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue(), content_type


def _weighted(values: Any) -> list[tuple[Any, float]]:
    """A spec list (uniform) or mapping value -> weight."""
    if isinstance(values, dict):
        return [(k, float(w)) for k, w in values.items()]
    return [(v, 1.0) for v in values]


def image_payloads(spec: ModelSpec, variants: int = IMAGE_VARIANTS) -> list[Payload]:
    """Every (size, format, polarity) combination, `variants` digits each, in a fixed order.

    Sizes may be weighted (`image_sizes: {8: 4, 1024: 1}`): a size with weight w appears
    round(w * variants) times per format and polarity.
    """
    sizes = _weighted(spec.load.get("image_sizes", [8, 28, 64]))
    formats = list(spec.load.get("image_formats", ["png"]))
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"model {spec.name!r}: unsupported load.image_formats {sorted(unknown)}")
    digits, labels = held_out_digits()
    rng = random.Random(SEED)
    out = []
    index = 0
    for size, weight in sizes:
        for fmt in formats:
            for light_on_dark in (True, False):
                for _ in range(max(1, round(weight * variants))):
                    i = rng.randrange(len(digits))
                    data, content_type = encode_image(render_digit(digits[i], int(size), light_on_dark, rng), fmt)
                    if index % JSON_EVERY == JSON_EVERY - 1:
                        body = json.dumps({"image": base64.b64encode(data).decode("ascii")}).encode()
                        content_type = "application/json"
                    else:
                        body = data
                    out.append(Payload(body, content_type, str(labels[i])))
                    index += 1
    return out


def bad_image_payloads(spec: ModelSpec) -> list[Payload]:
    png, _ = encode_image(render_digit(held_out_digits()[0][0], 28, True, random.Random(SEED)), "png")
    b64 = base64.b64encode(png).decode("ascii")
    return [
        Payload(png[: len(png) // 2], "image/png", "truncated_png", 400, "invalid_image"),
        Payload(b"this is not an image", "image/png", "not_an_image", 400, "invalid_image"),
        Payload(b'{"image": "@@not base64@@"}', "application/json", "bad_base64", 400, "invalid_base64"),
        Payload(json.dumps({"picture": b64}).encode(), "application/json", "wrong_field", 400, "invalid_request"),
        Payload(b'{"image": ', "application/json", "broken_json", 400, "invalid_json"),
        Payload(b"seven", "text/plain", "text_body", 415, "unsupported_media_type"),
    ]


# --- text ------------------------------------------------------------------------------------

@functools.cache
def word_lists() -> dict[str, str]:
    """Language label -> Debian word list file, as the langid model was trained on."""
    from models.langid import WORD_LISTS
    return dict(WORD_LISTS)


@functools.cache
def wordlist(language: str, count: int = WORDS_PER_LANGUAGE) -> tuple[str, ...]:
    """`count` words of one language, seeded; possessives ("cat's") and digits dropped."""
    path = DICT_DIR / word_lists()[language]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: install the Debian word lists "
                                "(make system-deps) or set LOADTEST_DICT_DIR")
    words = [w for w in path.read_text(encoding="utf-8", errors="replace").split("\n")
             if w and "'" not in w and not any(c.isdigit() for c in w)]
    return tuple(random.Random(f"{SEED}-{language}").sample(words, min(count, len(words))))


def text_length_mix(spec: ModelSpec) -> list[tuple[int, int, float]]:
    mix = spec.load.get("text_words")
    if not mix:
        return list(DEFAULT_TEXT_WORDS)
    out = []
    for row in mix:
        words = row["words"]
        lo, hi = (words, words) if isinstance(words, int) else (int(words[0]), int(words[1]))
        if not 1 <= lo <= hi:
            raise ValueError(f"model {spec.name!r}: load.text_words range {words} must be 1 <= lo <= hi")
        out.append((lo, hi, float(row["share"])))
    return out


def make_text(words: Sequence[str], n: int, max_chars: int, rng: random.Random) -> str:
    """`n` random words joined by spaces, cut at a word boundary to fit `max_chars`."""
    text = ""
    for _ in range(n):
        candidate = f"{text} {rng.choice(words)}" if text else rng.choice(words)
        if len(candidate) > max_chars:
            break
        text = candidate
    return text or rng.choice(words)[:max_chars]


def text_payloads(spec: ModelSpec, count: int = TEXTS_PER_PROCESS) -> list[Payload]:
    max_chars = int(spec.handler_config.get("text", {}).get("max_chars", 256))
    mix = text_length_mix(spec)
    languages = sorted(word_lists())
    rng = random.Random(SEED)
    out = []
    for i in range(count):
        language = languages[i % len(languages)]
        lo, hi, _ = rng.choices(mix, weights=[share for _, _, share in mix])[0]
        text = make_text(wordlist(language), rng.randint(lo, hi), max_chars, rng)
        if i % JSON_EVERY == JSON_EVERY - 1:
            out.append(Payload(text.encode("utf-8"), "text/plain; charset=utf-8", language))
        else:
            out.append(Payload(json.dumps({"text": text}, ensure_ascii=False).encode("utf-8"),
                               "application/json", language))
    rng.shuffle(out)
    return out


def bad_text_payloads(spec: ModelSpec) -> list[Payload]:
    max_chars = int(spec.handler_config.get("text", {}).get("max_chars", 256))
    return [
        Payload(json.dumps({"text": "x" * (max_chars + 50)}).encode(), "application/json", "too_long", 413,
                "text_too_long"),
        Payload(b'{"text": "   "}', "application/json", "blank", 400, "empty_text"),
        Payload(b"caf\xe9 \xff\xfe", "text/plain", "latin1_bytes", 400, "invalid_encoding"),
        Payload(b'{"text": ', "application/json", "broken_json", 400, "invalid_json"),
        Payload(b'{"txt": "hello"}', "application/json", "wrong_field", 400, "invalid_request"),
        Payload(b"\x89PNG\r\n\x1a\n\x00\x00", "image/png", "image_body", 415, "unsupported_media_type"),
    ]


# --- per process cache -----------------------------------------------------------------------

@dataclass(frozen=True)
class PayloadSet:
    good: tuple[Payload, ...]
    bad: tuple[Payload, ...]


_CACHE: dict[str, PayloadSet] = {}


def payloads_for(spec: ModelSpec) -> PayloadSet:
    """Build a model's bodies on first use in this process; later calls reuse them."""
    if spec.name not in _CACHE:
        if kind_of(spec) == "image":
            _CACHE[spec.name] = PayloadSet(tuple(image_payloads(spec)), tuple(bad_image_payloads(spec)))
        else:
            _CACHE[spec.name] = PayloadSet(tuple(text_payloads(spec)), tuple(bad_text_payloads(spec)))
    return _CACHE[spec.name]
