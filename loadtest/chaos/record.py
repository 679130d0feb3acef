"""Every request the chaos load sends, with its fate: answered 200 (right or wrong answer),
answered with an error (by status and error type), or unanswered.

Requests are counted when they leave (the user's `context()`, which Locust calls as a request
starts) and when they end (Locust's request event), so a request that never ends is counted too:
`unanswered` is what left and had no answer when the run stopped waiting, a bound after the last
request left. A 200 is checked against the answer the same body got before any fault: the load
sends one body per model so that every right answer is the same answer.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ANSWER_KEYS = ("label", "probability")


@dataclass(frozen=True)
class Record:
    model: str
    seq: int
    sent: float          # time.time() when the request left
    seconds: float       # until its answer (or its failure), open-loop lateness included
    status: int          # 0: no HTTP answer (connection failed or timed out)
    error: str = ""      # the error type of our error shape, or the failure
    wrong: bool = False  # a 200 whose answer differs from the reference answer
    ended: float = 0.0   # time.time() when its answer (or failure) came; 0 when it never did

    @property
    def answered(self) -> bool:
        return self.status != 0


def answer_key(text: str | None) -> tuple | None:
    """What must not change between two answers to the same body: the labels in order and their
    probabilities to 3 decimals (batching may change the last bits of a float)."""
    try:
        top = json.loads(text or "")["top_k"]
        return tuple((item["label"], round(float(item["probability"]), 3)) for item in top)
    except (ValueError, KeyError, TypeError):
        return None


def error_type(text: str | None) -> str:
    try:
        answer = json.loads(text or "")
    except ValueError:
        return (text or "")[:60]
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return str(answer["error"].get("type", ""))
    if isinstance(answer, dict):  # TorchServe's own shape: {"code", "type", "message"}
        return f"{answer.get('type', '')}: {answer.get('message', '')}"[:80]
    return ""


class Recorder:
    """Listens to one Locust environment's request events; `started` counts what left."""

    def __init__(self, references: dict[str, tuple], clock: Callable[[], float] = time.time):
        self.references = references
        self.clock = clock
        self.started: dict[int, tuple[str, float]] = {}
        self.records: list[Record] = []
        self._next = 0

    def context(self, model: str) -> dict[str, Any]:
        """Called as a request leaves: numbers it, so its end can be matched."""
        self._next += 1
        self.started[self._next] = (model, self.clock())
        return {"seq": self._next}

    def on_request(self, name: str = "", response_time: float = 0.0, response: Any = None,
                   context: dict | None = None, exception: Any = None, **_kwargs: Any) -> None:
        seq = (context or {}).get("seq")
        if seq is None or seq not in self.started:
            return
        model, sent = self.started[seq]
        status = int(getattr(response, "status_code", 0) or 0)
        text = getattr(response, "text", None) if status else None
        wrong = status == 200 and answer_key(text) != self.references.get(model)
        error = "" if status == 200 else (error_type(text) if status else f"{type(exception).__name__}: {exception}"[:80])
        self.records.append(Record(model, seq, sent, response_time / 1000, status, error, wrong, self.clock()))

    def in_flight(self) -> int:
        return len(self.started) - len(self.records)

    def unanswered(self) -> list[Record]:
        """What left and never ended (still in flight when the run stopped waiting)."""
        done = {r.seq for r in self.records}
        now = self.clock()
        return [Record(model, seq, sent, now - sent, 0, "unanswered") for seq, (model, sent) in self.started.items()
                if seq not in done]
