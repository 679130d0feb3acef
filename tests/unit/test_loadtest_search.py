"""The capacity search (loadtest/search.py) against a fake "does this rate pass?" (no server)."""
from __future__ import annotations

import pytest

from loadtest.search import find_capacity


def threshold(limit: float):
    """A server that holds any rate up to `limit` and fails above it; records the probes."""
    probes: list[float] = []

    def passes(rate: float) -> bool:
        probes.append(rate)
        return rate <= limit

    return passes, probes


def probes_left(n: int):
    left = [n]

    def more_time() -> bool:
        left[0] -= 1
        return left[0] >= 0

    return more_time


@pytest.mark.parametrize("limit, estimate", [(425, 480), (1460, 1500), (100, 40), (37, 1000), (9, 10)])
def test_bisection_brackets_the_real_capacity(limit: float, estimate: float) -> None:
    passes, probes = threshold(limit)
    search = find_capacity(passes, estimate, probes_left(50), tolerance=0.05)
    assert search.complete and search.failed is not None
    assert search.passed <= limit < search.failed <= search.passed * 1.05
    assert search.label == f"{search.passed:.1f}"
    assert len(probes) <= 20, probes               # even a 27x wrong estimate converges


def test_a_good_estimate_needs_few_steps() -> None:
    passes, probes = threshold(425)
    search = find_capacity(passes, 470, probes_left(50), tolerance=0.05)
    assert search.complete and len(probes) <= 5, probes


def test_a_search_cut_short_is_a_lower_bound_never_a_maximum() -> None:
    passes, probes = threshold(1460)
    search = find_capacity(passes, 100, probes_left(3))    # a low estimate and room for 3 steps only
    assert len(probes) == 3 and all(rate <= 1460 for rate in probes)
    assert not search.complete and search.stopped_because == "time budget used"
    assert search.label.startswith("≥ ") and search.capacity == max(probes)


def test_nothing_passes() -> None:
    search = find_capacity(lambda _rate: False, 100, probes_left(100), min_rate=0.5)
    assert search.passed is None and search.capacity == 0 and search.label.startswith("< ")
    assert "fails even at" in search.stopped_because


def test_everything_passes_up_to_the_maximum() -> None:
    search = find_capacity(lambda _rate: True, 100, probes_left(100), max_rate=300)
    assert search.passed == 300 and not search.complete and search.label == "≥ 300.0"


def test_a_noisy_step_cannot_raise_the_answer_above_a_failure() -> None:
    # one failing probe below a passing one (noise on a shared host): the answer stays the highest
    # pass below the lowest failure, and the search still ends bracketed
    answers = {432.0: False, 378.0: True, 405.0: True, 418.5: True, 425.2: False}
    search = find_capacity(lambda rate: answers.get(rate, rate < 420), 480, probes_left(50))
    assert search.complete and search.passed < search.failed
