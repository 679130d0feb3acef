"""One request body of the load test (`Payload`), and what every body generator shares: the seed
that makes every process build the same bodies, how often a body is a JSON envelope, text/plain.

payloads.py builds a model's bodies (images, sample files, the per-process cache), text_bodies.py
the text models'.
"""
from __future__ import annotations

from dataclasses import dataclass

SEED = 20240611
JSON_EVERY = 4                # every 4th body is a JSON envelope instead of raw bytes / text
TEXT_PLAIN = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Payload:
    """One request body. `expect_status`/`expect_error` are set for deliberately bad requests."""

    body: bytes
    content_type: str
    label: str                      # what the body holds (digit, language, or the bad case's name)
    expect_status: int | None = None
    expect_error: str | None = None
    # Request headers the body needs beyond its content type (an OIP binary body's JSON length),
    # and how many items (inference instances) it carries: 1 for every /predictions body.
    headers: tuple[tuple[str, str], ...] = ()
    instances: int = 1

    @property
    def is_bad(self) -> bool:
        return self.expect_status is not None
