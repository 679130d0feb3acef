"""The chaos harness's bookkeeping (loadtest/chaos/record.py, report.py) without a server: every
request that left is counted once, answered or not; wrong answers and the other model's losses
break the invariant; recovery counts from the fault's end."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from loadtest.chaos.faults import Fault
from loadtest.chaos.plan import Plan, Stage
from loadtest.chaos.record import Recorder, answer_key
from loadtest.chaos.recovery import Recovery, first_200
from loadtest.chaos.report import rows, verdicts, write

RIGHT = json.dumps({"model": "m", "top_k": [{"label": "a", "probability": 0.9}, {"label": "b", "probability": 0.1}]})
WRONG = json.dumps({"model": "m", "top_k": [{"label": "b", "probability": 0.9}, {"label": "a", "probability": 0.1}]})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _answer(recorder: Recorder, model: str, status: int, text: str = "", seconds: float = 0.01) -> None:
    context = recorder.context(model)
    recorder.clock.now += seconds  # type: ignore[attr-defined]
    recorder.on_request(name=model, response_time=seconds * 1000, context=context,
                        response=SimpleNamespace(status_code=status, text=text) if status else None,
                        exception=None if status else TimeoutError("timed out"))


def _recorded() -> tuple[Recorder, Plan, list[Stage]]:
    clock = Clock()
    recorder = Recorder({"m": answer_key(RIGHT), "other": answer_key(RIGHT)}, clock=clock)
    fault = Fault("kill once", "m", began=100.005, ended=100.6, hits=["1 READY"])
    _answer(recorder, "m", 200, RIGHT)
    _answer(recorder, "m", 507, '{"code": 507, "type": "InternalServerException", "message": "Worker died."}')
    _answer(recorder, "m", 200, WRONG)
    _answer(recorder, "other", 200, RIGHT)
    recorder.context("m")  # left, never answered
    plan = Plan("m", {"m": 1.0, "other": 1.0}, {"m": 10, "other": 10})
    return recorder, plan, [Stage(fault, (0.0, 1e12), Recovery(1.0, 1.5))]


def test_answers_are_keyed_by_labels_and_rounded_probabilities() -> None:
    assert answer_key(RIGHT) == (("a", 0.9), ("b", 0.1))
    assert answer_key(RIGHT.replace("0.9", "0.90001")) == answer_key(RIGHT)
    assert answer_key(WRONG) != answer_key(RIGHT) and answer_key("not json") is None


def test_every_request_that_left_is_counted_once_answered_or_not() -> None:
    recorder, plan, stages = _recorded()
    assert recorder.in_flight() == 1
    everything = recorder.records + recorder.unanswered()
    table = {row.model: row for row in rows(everything, stages, plan)}
    assert (table["m"].sent, table["m"].ok, table["m"].unanswered, table["m"].wrong) == (4, 2, 1, 1)
    assert table["m"].errors == {"507 InternalServerException: Worker died.": 1}
    assert (table["other"].sent, table["other"].ok) == (1, 1)


def test_unanswered_and_wrong_answers_break_the_invariant_and_so_does_a_loss_of_the_other_model() -> None:
    recorder, plan, stages = _recorded()
    broken = verdicts(rows(recorder.records + recorder.unanswered(), stages, plan), plan)
    assert any("unanswered" in line for line in broken) and any("wrong answer" in line for line in broken)
    _answer(recorder, "other", 503, '{"error": {"code": 503, "type": "worker_lost", "message": "x"}}')
    broken = verdicts(rows(recorder.records, stages, plan), plan)
    assert any("other (not faulted) lost 1" in line for line in broken)


def test_recovery_counts_from_the_faults_end(tmp_path: Path) -> None:
    recorder, plan, stages = _recorded()
    assert first_200(recorder.records, stages[0].fault) is None  # the only 200 of m after it is wrong
    recorder.clock.now = 101.0  # type: ignore[attr-defined]
    _answer(recorder, "m", 200, RIGHT)
    assert first_200(recorder.records, stages[0].fault) == round(101.01 - 100.6, 2)
    folder, broken = write(tmp_path, recorder.records + recorder.unanswered(), stages, plan, "test")
    assert {p.name for p in folder.iterdir()} == {"summary.md", "summary.json", "requests.csv", "timeline.png"}
    assert "| kill once | m | 5 | 3 |" in (folder / "summary.md").read_text() and broken
