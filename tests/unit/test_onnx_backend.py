"""The ONNX Runtime backend of sequence models: same answers as PyTorch, safe fallbacks."""
from __future__ import annotations

import logging

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from handlers.inputs import Request as CoreRequest
from handlers.onnx_backend import SPREAD, backend_setting, length_groups, probe_sequences, sequence_backend
from loadtest.payloads import payloads_for
from models.langid import LangIdGRU
from stackctl.catalog.inprocess import InProcessModel
from stackctl.catalog.specs import get_spec


@given(st.lists(st.integers(min_value=1, max_value=256), max_size=80))
def test_length_groups_cover_every_item_once_with_similar_lengths(lengths: list[int]) -> None:
    groups = length_groups(lengths, max_group=8)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    for group in groups:
        assert 1 <= len(group) <= 8
        shortest = min(lengths[i] for i in group)
        assert max(lengths[i] for i in group) <= SPREAD * shortest + 2


def test_the_served_langid_runs_on_onnxruntime_with_pytorchs_logits(langid: InProcessModel) -> None:
    """config/models/langid.yaml asks for onnxruntime; every load-test body, batched as served."""
    core = langid.handler.core
    handler = core.task
    assert handler.session is not None, "langid should serve with onnxruntime (see the worker's log)"
    samples = [core.decode(CoreRequest(p.body, p.content_type)) for p in payloads_for(get_spec("langid")).good[:512]]
    assert max(len(s) for s in samples) >= 200 and min(len(s) for s in samples) <= 3
    for start in range(0, len(samples), 32):
        batch = samples[start:start + 32]
        with torch.inference_mode():
            served = handler.forward(handler.collate(batch))
            reference = handler.torch_forward(batch)
        assert torch.allclose(served, reference, atol=1e-4), float((served - reference).abs().max())


def test_an_untrained_gru_exports_with_the_same_logits() -> None:
    """Not only the trained weights: gate order and biases must map for any weights."""
    torch.manual_seed(3)
    model = LangIdGRU(vocab_size=40, embedding=8, hidden=16).eval()
    probes = probe_sequences(40)

    def reference(samples: list[torch.Tensor]) -> torch.Tensor:
        from handlers.text import pack_batch
        return model(*pack_batch(samples))

    session = sequence_backend("tiny", model, torch.device("cpu"), 1, reference, probes)
    assert session is not None
    with torch.inference_mode():
        assert torch.allclose(session(probes[::-1]), reference(probes[::-1]), atol=1e-5)


def test_disagreeing_logits_fall_back_to_pytorch(caplog: pytest.LogCaptureFixture) -> None:
    model = LangIdGRU(vocab_size=40, embedding=8, hidden=16).eval()
    with caplog.at_level(logging.WARNING):
        session = sequence_backend("tiny", model, torch.device("cpu"), 1,
                                   lambda samples: torch.zeros(len(samples), 7), probe_sequences(40))
    assert session is None and "differ from PyTorch" in caplog.text


def test_gpu_and_models_without_a_graph_serve_with_pytorch(caplog: pytest.LogCaptureFixture) -> None:
    model = LangIdGRU(vocab_size=40, embedding=8, hidden=16).eval()
    fail = lambda samples: pytest.fail("no reference call expected")  # noqa: E731
    assert sequence_backend("tiny", model, torch.device("cuda", 0), 1, fail, []) is None
    with caplog.at_level(logging.WARNING):
        assert sequence_backend("plain", torch.nn.Linear(2, 2), torch.device("cpu"), 1, fail, []) is None
    assert "has no to_onnx()" in caplog.text


def test_backend_setting_is_checked() -> None:
    assert backend_setting({}) == "torch"
    assert backend_setting({"backend": "onnxruntime"}) == "onnxruntime"
    with pytest.raises(ValueError, match="handler.backend"):
        backend_setting({"backend": "tensorrt"})
