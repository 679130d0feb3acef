"""The model core on its own, with no runtime around it: a tiny task and a metrics recorder.

The same per-item contract the TorchServe adapter relies on (tests/unit/test_handlers_in_process.py
checks it through TorchServe's Context): a bad input is that item's 4xx, a decoder bug that item's
500, a failed batch a 500 for each of its items, and the metrics hooks see each of them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from handlers import errors
from handlers.core import Instances, Loaded, ModelCore
from handlers.errors import InputError
from handlers.inputs import IMAGE, Input, Request
from handlers.settings import HandlerSettings


class CountTask:
    """Reads the body's length as a one-feature input; b"bug" is a decoder bug, b"boom" breaks the batch."""

    accepts = IMAGE

    def __init__(self, loaded: Loaded):
        self.model = torch.nn.Linear(1, 3)

    def decode(self, request: Input) -> Any:
        if request.body == b"bug":
            raise KeyError("a decoder bug")
        return torch.tensor([float(len(request.body))]), request.body == b"boom"

    def collate(self, samples: list[Any]) -> Any:
        if any(boom for _, boom in samples):
            raise RuntimeError("the batch cannot run")
        return torch.stack([x for x, _ in samples])

    def forward(self, batch: Any) -> torch.Tensor:
        return self.model(batch)

    def warmup_request(self) -> Request:
        return Request(b"warm", "application/octet-stream")


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def observe(self, name: str, value: float) -> None:
        self.events.append(("observe", name))

    def rejected(self, error_type: str) -> None:
        self.events.append(("rejected", error_type))

    def failed_batch(self) -> None:
        self.events.append(("failed_batch", None))


@pytest.fixture
def core() -> ModelCore:
    loaded = Loaded(HandlerSettings(), Path("."), torch.nn.Identity(), torch.device("cpu"), 1, "count")
    return ModelCore(CountTask(loaded), loaded, ["a", "b", "c"], batch_size=4)


def test_the_core_warms_up_and_answers_top_k_without_a_runtime(core: ModelCore) -> None:
    assert core.warmed_up == [1, 2, 3, 4]
    results = core.answer([Request(b"xx", "image/png"), Request(b"xxx", "image/png")])
    assert [r.status for r in results] == [200, 200]
    assert results[0].body["model"] == "count" and len(results[0].body["top_k"]) == HandlerSettings().top_k
    assert results[0].body == core.predict([core.decode(Request(b"xx", "image/png"))])[0]


def test_each_item_keeps_its_own_error_and_the_hooks_see_it(core: ModelCore) -> None:
    metrics = Recorder()
    results = core.answer([Request(b"", "image/png"), Request(b"bug", "image/png"), Request(b"ok", "image/png"),
                           Request(b"hello", "text/plain")], ids=["r0", "r1", "r2", "r3"], metrics=metrics)
    assert [(r.status, r.error_type) for r in results] == [
        (400, errors.EMPTY_INPUT), (500, "internal_error"), (200, None), (415, errors.UNSUPPORTED_MEDIA_TYPE)]
    assert results[1].phrase == "Internal Server Error" and results[3].phrase == "Unsupported Media Type"
    assert [e for e in metrics.events if e[0] == "rejected"] == [
        ("rejected", errors.EMPTY_INPUT), ("rejected", "internal_error"), ("rejected", errors.UNSUPPORTED_MEDIA_TYPE)]
    assert ("observe", "handler_batch_size") in metrics.events


def test_a_failed_batch_answers_500_to_each_of_its_items_only(core: ModelCore) -> None:
    metrics = Recorder()
    results = core.answer([Request(b"boom", "image/png"), Request(b"", "image/png"), Request(b"ok", "image/png")],
                          metrics=metrics)
    assert [r.status for r in results] == [500, 400, 500]
    assert metrics.events.count(("failed_batch", None)) == 1
    assert metrics.events.count(("rejected", "internal_error")) == 2


def test_decode_raises_the_input_error_with_the_form_hint_for_a_body_labelled_a_form(core: ModelCore) -> None:
    with pytest.raises(InputError) as refused:
        core.decode(Request(b"", "application/octet-stream", sent_as="application/x-www-form-urlencoded"))
    assert refused.value.code == 400 and "-H 'Content-Type: image/png'" in refused.value.message
    sample, result = core.decode_or_answer(Request(b"bug", "image/png"))
    assert sample is None and result is not None and result.status == 500


class ValueRecorder(Recorder):
    def observe(self, name: str, value: float) -> None:
        self.events.append((name, value))


def test_a_request_of_several_instances_joins_the_one_forward_pass(core: ModelCore) -> None:
    """N instances are N samples of the batch; each answers as it would alone; metrics stay per request."""
    metrics = ValueRecorder()
    three = Instances(tuple(Request(body, "image/png") for body in (b"x", b"xxxx", b"xx")))
    results = core.answer([three, Request(b"xxx", "image/png")], metrics=metrics)
    assert [r.status for r in results] == [200, 200]
    alone = core.predict([core.decode(Request(body, "image/png")) for body in (b"x", b"xxxx", b"xx", b"xxx")])
    assert results[0].body == {"model": "count", "answers": alone[:3]} and results[1].body == alone[3]
    assert ("handler_batch_size", 4) in metrics.events
    assert [name for name, _ in metrics.events].count("handler_request_seconds") == 2


def test_a_bad_instance_refuses_its_own_request_only_naming_it(core: ModelCore) -> None:
    metrics = ValueRecorder()
    refused = InputError(400, errors.INVALID_REQUEST, "no inputs")
    results = core.answer([Instances((Request(b"ok", "image/png"), Request(b"", "image/png"))),
                           Instances((Request(b"bug", "image/png"),)), Instances(refused=refused),
                           Instances((Request(b"ok", "image/png"),))], metrics=metrics)
    assert [(r.status, r.error_type) for r in results] == [
        (400, errors.EMPTY_INPUT), (500, "internal_error"), (400, errors.INVALID_REQUEST), (200, None)]
    assert results[0].body["error"]["message"].startswith("instance 1: empty_input: ")
    assert results[2].body["error"]["message"] == "no inputs"
    assert [e for e in metrics.events if e[0] == "rejected"] == [
        ("rejected", errors.EMPTY_INPUT), ("rejected", "internal_error"), ("rejected", errors.INVALID_REQUEST)]
    assert ("handler_batch_size", 1) in metrics.events


@pytest.mark.parametrize("pad,expected", [(True, [4, 4, 2]), (False, [10])])
def test_padded_batches_past_batch_size_run_as_passes_of_warmed_sizes(pad: bool, expected: list[int]) -> None:
    """With padding (CUDA) a batch of multi-instance requests past batch_size never meets a cold
    shape; unpadded (CPU) it is one pass."""
    loaded = Loaded(HandlerSettings(pad_batches=pad), Path("."), torch.nn.Identity(), torch.device("cpu"), 1, "n")
    core = ModelCore(CountTask(loaded), loaded, ["a", "b", "c"], batch_size=4)
    seen: list[int] = []
    forward = core.task.forward
    core.task.forward = lambda batch: seen.append(len(batch)) or forward(batch)  # type: ignore[method-assign]
    item = Instances(tuple(Request(b"x" * n, "image/png") for n in range(1, 11)))
    result, = core.answer([item])
    assert seen == expected and result.status == 200
    assert result.body["answers"] == core.predict([core.decode(r) for r in item.requests])


@pytest.mark.parametrize("pad,limit,chunks", [(False, 8, [8] * 8 + [6]), (True, 8, [4] * 17 + [2]),
                                              (True, None, [4] * 17 + [2]), (False, 3, [3] * 23 + [1])])
def test_max_forward_batch_splits_a_large_batch_into_passes_with_the_same_answers(
        pad: bool, limit: int | None, chunks: list[int]) -> None:
    """A batch of multi-instance requests past `max_forward_batch` runs as passes of at most that
    many samples (padded: of at most the largest warmed size), each answer as the item's alone."""
    settings = HandlerSettings(pad_batches=pad, max_forward_batch=limit)
    loaded = Loaded(settings, Path("."), torch.nn.Identity(), torch.device("cpu"), 1, "n")
    core = ModelCore(CountTask(loaded), loaded, ["a", "b", "c"], batch_size=4)
    seen: list[int] = []
    forward = core.task.forward
    core.task.forward = lambda batch: seen.append(len(batch)) or forward(batch)  # type: ignore[method-assign]
    bodies = [b"x" * n for n in range(1, 71)]
    first, second, single = core.answer([Instances(tuple(Request(b, "image/png") for b in bodies[:40])),
                                         Instances(tuple(Request(b, "image/png") for b in bodies[40:69])),
                                         Request(bodies[69], "image/png")])
    assert seen == chunks and max(seen) <= (limit or 4)
    one_by_one = [core.predict([core.decode(Request(b, "image/png"))])[0] for b in bodies]
    assert [first.status, second.status, single.status] == [200, 200, 200]
    assert first.body["answers"] + second.body["answers"] + [single.body] == one_by_one
