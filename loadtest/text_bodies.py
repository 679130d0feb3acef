"""The text models' request bodies: words and short texts drawn from the Debian word lists (the
langid model's own), with a spread of lengths, as JSON {"text": ...} or text/plain; and the
deliberately bad text requests with the 4xx each must get. Seeded, like every body (payloads.py).
"""
from __future__ import annotations

import functools
import json
import os
import random
from collections.abc import Sequence
from pathlib import Path

from loadtest.request_body import JSON_EVERY, SEED, TEXT_PLAIN, Payload
from stackctl.catalog.specs import ModelSpec

DICT_DIR = Path(os.environ.get("LOADTEST_DICT_DIR", "/usr/share/dict"))
WORDS_PER_LANGUAGE = 3000
TEXTS_PER_PROCESS = 2000
# Requests by number of words: (fewest, most, share). Mostly single words and short phrases,
# with a long tail that reaches the handler's character limit. A spec may replace it with
# `load.text_words: [{words: [lo, hi], share: s}, ...]`.
DEFAULT_TEXT_WORDS: tuple[tuple[int, int, float], ...] = (
    (1, 1, 0.45), (2, 4, 0.25), (5, 12, 0.17), (13, 30, 0.09), (31, 80, 0.04))


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
    mix = spec.load.text_words
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
    max_chars = spec.handler.text.max_chars
    mix = text_length_mix(spec)
    languages = sorted(word_lists())
    rng = random.Random(SEED)
    out = []
    for i in range(count):
        language = languages[i % len(languages)]
        lo, hi, _ = rng.choices(mix, weights=[share for _, _, share in mix])[0]
        text = make_text(wordlist(language), rng.randint(lo, hi), max_chars, rng)
        if i % JSON_EVERY == JSON_EVERY - 1:
            out.append(Payload(text.encode("utf-8"), TEXT_PLAIN, language))
        else:
            out.append(Payload(json.dumps({"text": text}, ensure_ascii=False).encode("utf-8"),
                               "application/json", language))
    rng.shuffle(out)
    return out


def bad_text_payloads(spec: ModelSpec) -> list[Payload]:
    max_chars = spec.handler.text.max_chars
    return [
        Payload(json.dumps({"text": "x" * (max_chars + 50)}).encode(), "application/json", "too_long", 413,
                "text_too_long"),
        Payload(b'{"text": "   "}', "application/json", "blank", 400, "empty_text"),
        Payload(b"caf\xe9 \xff\xfe", "text/plain", "latin1_bytes", 400, "invalid_encoding"),
        Payload(b'{"text": ', "application/json", "broken_json", 400, "invalid_json"),
        Payload(b'{"txt": "hello"}', "application/json", "wrong_field", 400, "invalid_request"),
        Payload(b"\x89PNG\r\n\x1a\n\x00\x00", "image/png", "image_body", 415, "unsupported_media_type"),
    ]
