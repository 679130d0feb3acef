"""Is an answer what the serving contract promises? (200 JSON top_k, or the expected 4xx error.)

Plain functions (no Locust import) so unit tests can call them directly.
"""
from __future__ import annotations

import json


def check_prediction(model: str, status: int, text: str | None) -> str | None:
    """None when `text` is a valid 200 answer for `model`, else why it is not."""
    if status != 200:
        return f"HTTP {status}{_error_type(text)}"
    try:
        answer = json.loads(text or "")
    except ValueError:
        return "HTTP 200 with a body that is not JSON"
    if not isinstance(answer, dict) or answer.get("model") != model:
        return f"HTTP 200 but 'model' is {answer.get('model') if isinstance(answer, dict) else None!r}"
    top = answer.get("top_k")
    if not isinstance(top, list) or not top:
        return "HTTP 200 without a non-empty 'top_k' list"
    probabilities = [item.get("probability") if isinstance(item, dict) else None for item in top]
    if not all(isinstance(p, (int, float)) for p in probabilities):
        return "HTTP 200 with a top_k entry lacking a numeric probability"
    if any(a < b for a, b in zip(probabilities, probabilities[1:])):
        return "HTTP 200 with top_k not sorted best first"
    return None


def check_rejection(expect_status: int, expect_error: str, status: int, text: str | None) -> str | None:
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
