"""Open-loop pacing (loadtest/pacing.py): starts keep their schedule whatever the answers do."""
from __future__ import annotations

import random

import pytest

from loadtest.pacing import Pacer, per_user_rate, users_for_rate


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacer_keeps_a_fixed_schedule_independent_of_response_time():
    clock = FakeClock()
    pacer = Pacer(rate=2, phase=0.0, clock=clock)
    assert pacer.next_wait(2) == 0.0            # first start now (phase 0)
    clock.now += 0.1                             # a fast answer
    assert pacer.next_wait(2) == pytest.approx(0.4)  # next start 0.5 s after the previous *start*
    clock.now += 0.4
    assert pacer.late_by() == 0


def test_a_late_answer_makes_the_next_requests_late_by_their_schedule():
    clock = FakeClock()
    pacer = Pacer(rate=2, phase=0.0, clock=clock)
    pacer.next_wait(2)                          # scheduled at t=100
    clock.now += 1.3                            # the answer took 1.3 s
    assert pacer.next_wait(2) == 0.0            # send at once (open loop: no skipped request)...
    assert pacer.late_by() == pytest.approx(0.8)  # ...0.8 s behind its t=100.5 schedule
    assert pacer.next_wait(2) == 0.0            # the t=101 start is also overdue
    assert pacer.late_by() == pytest.approx(0.3)


def test_a_late_wake_up_counts_as_lateness_of_the_request_it_sends():
    # A busy load generator wakes a sleeping user after its scheduled start: the request leaves
    # late although the wait was computed on time, and that delay is the request's too.
    clock = FakeClock()
    pacer = Pacer(rate=4, phase=0.0, clock=clock)
    pacer.next_wait(4)
    wait = pacer.next_wait(4)                   # start due at t=100.25
    clock.now += wait + 0.07                    # woken 70 ms late
    assert pacer.late_by() == pytest.approx(0.07)


def test_schedule_does_not_drift_with_answer_times():
    # 1000 starts at 5/s with random answer times shorter than the period: the 1000th start is
    # exactly 999 periods after the first (the schedule), whatever the answers took.
    clock = FakeClock()
    pacer = Pacer(rate=5, phase=0.0, clock=clock)
    rng = random.Random(0)
    first = clock.now
    for _ in range(1000):
        clock.now += pacer.next_wait(5)        # the user sleeps until its start...
        assert pacer.late_by() == pytest.approx(0.0, abs=1e-9)
        clock.now += rng.uniform(0.0, 0.19)    # ...and its answer takes up to 190 ms
    assert pacer.next_start == pytest.approx(first + 999 / 5)


def test_pacer_restarts_its_schedule_when_the_rate_changes():
    clock = FakeClock()
    pacer = Pacer(rate=1, phase=0.5, clock=clock)
    assert pacer.next_wait(1) == pytest.approx(0.5)   # phase spreads users over one period
    clock.now += 10
    assert pacer.next_wait(4) == pytest.approx(0.125)  # new rate: phase/rate from now, no debt
    assert pacer.late_by() == 0


def test_users_and_per_user_rate():
    assert users_for_rate(10, 2) == 5 and users_for_rate(10.5, 2) == 6 and users_for_rate(0.1, 2) == 1
    with pytest.raises(ValueError):
        users_for_rate(10, 0)
    assert per_user_rate(250) == 2.0            # one start per 2 x p99
    assert per_user_rate(10) == 10.0 and per_user_rate(10_000) == 0.5  # bounded
