"""Is an answer what the serving contract promises? (200 JSON top_k, or the expected 4xx error.)

Plain functions (no Locust import) so unit tests can call them directly.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from handlers.labels import read_labels
from stackctl.catalog.specs import ModelSpec

log = logging.getLogger("loadtest")


@dataclass(frozen=True)
class AnswerShape:
    """What every 200 answer of one model looks like, whatever its input (no expected label needed)."""

    model: str
    top_k: int | None = None               # answers per request; None: at least one
    labels: frozenset[str] | None = None   # None: the label file is not readable here


def answer_shape(spec: ModelSpec) -> AnswerShape:
    """From the spec: its name, `handler.top_k` (as the handler reads it) and its labels file.

    A load generator that mounts only loadtest/, config/, stackctl/, models/ and handlers/ (compose,
    Kubernetes) has no build/ folder: its answers are then checked without the label set."""
    try:
        # Any of the label forms a spec may name (JSON list, {"0": ...} mapping, one per line).
        labels = frozenset(read_labels(spec.labels_path))
    except (OSError, ValueError) as exc:
        log.warning("%s: labels not readable (%s): answers are checked without the label set", spec.name, exc)
        return AnswerShape(spec.name)
    return AnswerShape(spec.name, min(spec.handler.top_k, len(labels)), labels)


def check_prediction(shape: AnswerShape, status: int, text: str | None) -> str | None:
    """None when `text` is a valid 200 answer of this shape, else why it is not."""
    if status != 200:
        return f"HTTP {status}{_error_type(text)}"
    try:
        answer = json.loads(text or "")
    except ValueError:
        return "HTTP 200 with a body that is not JSON"
    if not isinstance(answer, dict) or answer.get("model") != shape.model:
        return f"HTTP 200 but 'model' is {answer.get('model') if isinstance(answer, dict) else None!r}"
    top = answer.get("top_k")
    if not isinstance(top, list) or not top:
        return "HTTP 200 without a non-empty 'top_k' list"
    if shape.top_k is not None and len(top) != shape.top_k:
        return f"HTTP 200 with {len(top)} top_k entries, expected {shape.top_k}"
    probabilities = [item.get("probability") if isinstance(item, dict) else None for item in top]
    numbers: list[float] = [p for p in probabilities if isinstance(p, (int, float))]
    if len(numbers) != len(probabilities):
        return "HTTP 200 with a top_k entry lacking a numeric probability"
    if any(a < b for a, b in zip(numbers, numbers[1:])):
        return "HTTP 200 with top_k not sorted best first"
    if shape.labels is not None:
        strangers = [item.get("label") for item in top if item.get("label") not in shape.labels]
        if strangers:
            return f"HTTP 200 with labels not in the model's label set: {strangers[:3]}"
    return None


def check_rejection(expect_status: int | None, expect_error: str | None, status: int, text: str | None) -> str | None:
    """None when a deliberately bad request got the 4xx and error type it deserves."""
    got = _error_type(text).strip(" ()") or "no error type"
    if status != expect_status or got != expect_error:
        return f"bad request {expect_error}: expected HTTP {expect_status} {expect_error}, got HTTP {status} {got}"
    return None


def _error_type(text: str | None) -> str:
    try:
        error = json.loads(text or "").get("error", {})
        return f" ({error['type']})" if isinstance(error, dict) and "type" in error else ""
    except (ValueError, AttributeError):
        return ""


def check_oip_answer(shape: AnswerShape, instances: int, status: int, body: bytes | None,
                     header_length: str | None) -> str | None:
    """None when `body` is a 200 OIP answer with `label` and `probability` of shape [instances, k].

    Only the JSON header is read (the binary extension puts it first, `header_length` bytes long;
    without that header the whole body is JSON): decoding every tensor would cost the load
    generator more CPU than the server spends, and the handler's tests check the values."""
    if status != 200:
        try:
            error = json.loads(body or b"").get("error")
        except (ValueError, AttributeError):
            error = None
        return f"HTTP {status}" + (f" ({str(error)[:80]})" if error else "")
    try:
        length = int(header_length) if header_length else len(body or b"")
        answer = json.loads((body or b"")[:length])
        outputs = {o["name"]: o for o in answer["outputs"]}
    except (ValueError, TypeError, KeyError):
        return "HTTP 200 with a body that is not an OIP answer"
    for name in ("label", "probability"):
        if name not in outputs:
            return f"HTTP 200 without output {name!r}"
        got = outputs[name].get("shape")
        if not isinstance(got, list) or len(got) != 2 or got[0] != instances:
            return f"HTTP 200 with {name} shape {got}, expected [{instances}, k]"
        if shape.top_k is not None and got[1] != shape.top_k:
            return f"HTTP 200 with {name} shape {got}, expected k = {shape.top_k}"
    return None
