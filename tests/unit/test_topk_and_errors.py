from __future__ import annotations

import pytest
import torch

from handlers.errors import ERROR_TYPES, InputError, error_body
from handlers.runtime import thread_count
from handlers.topk import answer, top_k


def test_top_k_is_sorted_probabilities_with_labels() -> None:
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    ranked = top_k(logits, ["a", "b", "c"], 2)
    assert [r["label"] for r in ranked[0]] == ["b", "c"]
    assert ranked[0][0]["probability"] > ranked[0][1]["probability"]
    assert ranked[1][0]["label"] == "a"
    assert abs(sum(r["probability"] for r in top_k(logits, ["a", "b", "c"], 3)[0]) - 1.0) < 1e-5


def test_top_k_is_clamped_to_the_number_of_labels() -> None:
    assert len(top_k(torch.zeros(1, 2), ["x", "y"], 10)[0]) == 2
    assert len(top_k(torch.zeros(1, 2), ["x", "y"], 0)[0]) == 1


def test_answer_and_error_shapes_are_the_public_contract() -> None:
    assert answer("m", [{"label": "a", "probability": 1.0}]) == {"model": "m", "top_k": [{"label": "a", "probability": 1.0}]}
    assert error_body(400, "t", "msg") == {"error": {"code": 400, "type": "t", "message": "msg"}}
    err = InputError(413, "text_too_long", "too long")
    assert err.phrase == "Request Entity Too Large" or err.phrase == "Content Too Large"
    assert len(set(ERROR_TYPES)) == len(ERROR_TYPES)


def test_input_errors_are_always_4xx() -> None:
    with pytest.raises(ValueError):
        InputError(500, "x", "y")


@pytest.mark.parametrize("setting,workers,cores,expected", [
    ("auto", 2, 2, 1), ("auto", 1, 2, 2), ("auto", 3, 16, 5), ("auto", 8, 2, 1), (4, 2, 2, 4)])
def test_threads_never_oversubscribe_in_auto_mode(setting, workers, cores, expected) -> None:
    assert thread_count(setting, workers, cores) == expected
