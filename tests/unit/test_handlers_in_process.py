"""The real handler classes on the built archives, driven with TorchServe's own Context (no server)."""
from __future__ import annotations

import json
import re

import pytest
import torch

from handlers.inputs import Request as CoreRequest
from stackctl.catalog.inprocess import InProcessModel, Request
from stackctl.catalog.specs import get_spec
from tests.archives import in_process
from tests.imagegen import digit_image, encode, held_out


def _probabilities(answer: dict) -> dict[str, float]:
    return {r["label"]: r["probability"] for r in answer["top_k"]}


def test_text_answer_does_not_depend_on_its_batch(langid: InProcessModel) -> None:
    texts = ["bonjour", "the quick brown fox jumps over the lazy dog", "ja", "buongiorno a tutti voi",
             "obrigado", "dankjewel voor alles", "x", "Straßenbahnhaltestelle"]
    alone = [langid.predict([Request(json.dumps({"text": t}).encode(), "application/json")])[0] for t in texts]
    together = langid.predict([Request(json.dumps({"text": t}).encode(), "application/json") for t in texts])
    reversed_ = langid.predict([Request(json.dumps({"text": t}).encode(), "application/json") for t in texts[::-1]])[::-1]
    for (s1, a1), (s2, a2), (s3, a3) in zip(alone, together, reversed_):
        assert s1 == s2 == s3 == 200
        assert [r["label"] for r in a1["top_k"]] == [r["label"] for r in a2["top_k"]] == [r["label"] for r in a3["top_k"]]
        for label, p in _probabilities(a1).items():
            assert abs(p - _probabilities(a2)[label]) <= 1e-5
            assert abs(p - _probabilities(a3)[label]) <= 1e-5


def test_image_answer_does_not_depend_on_its_batch(digits: InProcessModel) -> None:
    samples = [encode(digit_image(img, size, "L", dark), "PNG")
               for (img, _), size, dark in zip(held_out(6, seed=5), (8, 28, 64, 100, 300, 16), (0, 1, 0, 1, 0, 1))]
    alone = [digits.predict([Request(s, "image/png")])[0][1] for s in samples]
    together = [a for _, a in digits.predict([Request(s, "image/png") for s in samples])]
    for a1, a2 in zip(alone, together):
        assert [r["label"] for r in a1["top_k"]] == [r["label"] for r in a2["top_k"]]
        for label, p in _probabilities(a1).items():
            assert abs(p - _probabilities(a2)[label]) <= 1e-5


def test_channels_last_changes_speed_not_answers(digits: InProcessModel) -> None:
    """The digits spec serves channels_last (a speed setting): contiguous gives the same logits."""
    core = digits.handler.core
    handler = core.task
    assert handler.channels_last, "config/models/digits.yaml sets channels_last: true"
    batch = handler.collate([core.decode(CoreRequest(encode(digit_image(img, 28, "L", False), "PNG"), "image/png"))
                             for img, _ in held_out(8, seed=9)])
    with torch.inference_mode():
        served = handler.forward(batch)
        handler.channels_last = False
        handler.model.to(memory_format=torch.contiguous_format)
        try:
            contiguous = handler.forward(batch)
        finally:
            handler.channels_last = True
            handler.model.to(memory_format=torch.channels_last)
    assert torch.allclose(served, contiguous, atol=1e-4)


def test_bad_items_get_their_own_4xx_and_good_items_in_the_same_batch_still_answer(digits: InProcessModel) -> None:
    (img, label), = held_out(1, seed=7)
    good = Request(encode(digit_image(img, 32, "L", True), "PNG"), "image/png")
    results = digits.predict([good, Request(b"garbage", "image/png"), good, Request(b"", "image/png")])
    assert [code for code, _ in results] == [200, 400, 200, 400]
    assert results[0][1]["model"] == "digits" and results[0][1]["top_k"][0]["label"] == str(label)
    assert results[1][1]["error"]["type"] == "invalid_image"
    assert results[3][1]["error"]["type"] == "empty_input"


def _emitted(log: str, model: str) -> dict[str, list[str]]:
    """Metric name -> values, from the [METRICS] lines TorchServe's metric cache logs per emission."""
    found: dict[str, list[str]] = {}
    for name, value in re.findall(rf"\[METRICS\](\w+)\.\w+:([0-9.eE+-]+)\|#ModelName:{model}\b", log):
        found.setdefault(name, []).append(value)
    return found


def test_handler_emits_declared_metrics(digits: InProcessModel, caplog: pytest.LogCaptureFixture) -> None:
    # Emitted, not merely declared: the metric cache returns every metric in metrics.yaml whether
    # or not a handler ever updates it, so look for the emissions themselves.
    (img, _), = held_out(1)
    with caplog.at_level("INFO"):
        digits.predict([Request(encode(digit_image(img, 16, "L", False), "PNG"), "image/png"),
                        Request(b"x", "image/png")])
    emitted = _emitted(caplog.text, "digits")
    for name in ("handler_preprocess_seconds", "handler_inference_seconds", "handler_postprocess_seconds",
                 "handler_request_seconds"):
        assert len(emitted.get(name, [])) == 1, (name, emitted)
    assert emitted["handler_batch_size"] == ["1"], emitted
    assert "[METRICS]handler_rejected_items_total" in caplog.text and "ErrorType:invalid_image" in caplog.text


@pytest.mark.parametrize("stage", ["collate", "forward"])
def test_a_batch_that_fails_after_decoding_answers_each_item_500_and_the_worker_serves_on(
        digits: InProcessModel, caplog: pytest.LogCaptureFixture, stage: str) -> None:
    (img, label), = held_out(1, seed=7)
    good = Request(encode(digit_image(img, 32, "L", True), "PNG"), "image/png")

    def broken(_batch):
        raise RuntimeError(f"forced failure in {stage}")

    task = digits.handler.core.task
    setattr(task, stage, broken)  # an instance attribute shadows the method
    try:
        with caplog.at_level("INFO"):
            results = digits.predict([good, Request(b"garbage", "image/png"), good])
    finally:
        delattr(task, stage)
    assert [code for code, _ in results] == [500, 400, 500]
    assert [a["error"]["type"] for _, a in results] == ["internal_error", "invalid_image", "internal_error"]
    assert results[0][1]["error"]["code"] == 500
    failure = next(r for r in caplog.records if "failed after decoding" in r.getMessage())
    assert "req-0" in failure.getMessage() and "req-2" in failure.getMessage() and "req-1" not in failure.getMessage()
    assert failure.exc_info is not None  # the traceback is logged
    emitted = _emitted(caplog.text, "digits")
    assert emitted["handler_failed_batches_total"] == ["1"], emitted
    assert caplog.text.count("ErrorType:internal_error") == 2
    (status, answer), = digits.predict([good])
    assert status == 200 and answer["top_k"][0]["label"] == str(label)


def test_thread_setting_respects_the_host_share(digits: InProcessModel) -> None:
    assert 1 <= digits.handler.core.threads <= max(1, torch.get_num_threads())


def test_image_worker_imports_its_decoders_at_start_not_in_the_first_request() -> None:
    # In a fresh process: the digits model never imports torchvision itself, and a lazy import
    # inside the first WebP request cost that request 1.4 s.
    import subprocess
    import sys

    from stackctl import paths

    archive = get_spec("digits").archive_path
    code = ("import sys; from pathlib import Path; from stackctl.catalog.inprocess import InProcessModel; "
            f"InProcessModel(Path({str(archive)!r})); print('torchvision.io' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code], cwd=paths.ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize("name", ["digits", "langid"])
def test_worker_runs_every_batch_size_it_can_be_sent_before_it_is_ready(name: str) -> None:
    # On CUDA the first call at a new batch size cost 1.3-2.2 s (bench/NOTES.md row 35): the
    # worker pays it in initialize, where TorchServe still counts it as starting.
    model = in_process(name)
    assert model.handler.core.warmed_up == [1]
    model.handler.initialize(model.context(5))
    assert model.handler.core.warmed_up == [1, 2, 3, 4, 5]
    model.model_yaml_config["handler"]["warmup"] = False
    model.handler.initialize(model.context(5))
    assert model.handler.core.warmed_up == []


def test_padded_batches_run_at_fewer_sizes_and_answer_the_same(digits: InProcessModel) -> None:
    # On CUDA (pad_batches: auto) a batch runs at the next power of two, so a worker warms up at
    # log2(batchSize) sizes instead of batchSize; forced on here, where it runs on the CPU.
    from handlers.core import forward_batch_sizes

    assert forward_batch_sizes(8, pad=True) == [1, 2, 4, 8]
    assert forward_batch_sizes(6, pad=True) == [1, 2, 4, 6]
    assert forward_batch_sizes(1, pad=True) == [1] and forward_batch_sizes(3, pad=False) == [1, 2, 3]
    requests = [Request(encode(digit_image(img, 40, "L", True), "PNG"), "image/png") for img, _ in held_out(3, seed=5)]
    plain = digits.predict(requests + [Request(b"not an image", "image/png")])
    model = in_process("digits")
    model.model_yaml_config["handler"]["pad_batches"] = True
    model.handler.initialize(model.context(8))
    assert model.handler.core.warmed_up == [1, 2, 4, 8]
    seen: list[int] = []
    model.handler.core.model.register_forward_hook(lambda _module, args, _out: seen.append(args[0].shape[0]))
    padded = model.predict(requests + [Request(b"not an image", "image/png")])
    assert seen == [4]  # three valid items padded to four; the rejected one is not in the batch
    assert [status for status, _ in padded] == [200, 200, 200, 400]
    for (_, a), (_, b) in zip(plain[:3], padded[:3]):
        assert a["top_k"][0] == b["top_k"][0] or abs(a["top_k"][0]["probability"] - b["top_k"][0]["probability"]) < 1e-5


def test_a_rejected_warm_up_request_leaves_the_worker_cold_but_serving(caplog: pytest.LogCaptureFixture) -> None:
    model = in_process("digits")
    model.model_yaml_config["handler"]["image"]["min_side"] = 65  # the warm-up image is 64 px
    with caplog.at_level("WARNING"):
        model.handler.initialize(model.context(4))
    assert model.handler.core.warmed_up == []
    assert "warm-up request rejected" in caplog.text
    (img, label), = held_out(1, seed=3)
    (status, answer), = model.predict([Request(encode(digit_image(img, 100, "L", False), "PNG"), "image/png")])
    assert status == 200 and answer["top_k"][0]["label"] == str(label)
