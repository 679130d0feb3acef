"""Load shapes as data: stage lookup, user counts for an arrival rate, open-loop pacing."""
from __future__ import annotations

import json

import pytest

from loadtest import shapes
from loadtest.shapes import Pacer, Stage


def test_stage_at_walks_the_table_and_ends_after_the_last_stage():
    table = (Stage(10, users=1), Stage(5, users=2))
    assert shapes.stage_at(table, 0).users == 1
    assert shapes.stage_at(table, 9.99).users == 1
    assert shapes.stage_at(table, 10).users == 2
    assert shapes.stage_at(table, 14.9).users == 2
    assert shapes.stage_at(table, 15) is None


@pytest.mark.parametrize("table", [shapes.STEP_RAMP, shapes.ARRIVAL_RATE])
def test_builtin_tables_are_monotonic_ramps(table):
    values = [s.users or s.rps for s in table]
    assert values == sorted(values) and values[0] > 0
    assert all(s.seconds > 0 for s in table)


def test_step_ramp_tick_returns_users_and_spawn_rate_then_stops():
    table = (Stage(2, users=3, spawn_rate=7),)
    assert shapes.step_ramp_tick(table, 1) == (3, 7)
    assert shapes.step_ramp_tick(table, 2) is None


def test_arrival_rate_tick_sizes_users_from_the_target_rate():
    table = (Stage(10, rps=25), Stage(10, rps=0.5))
    users, spawn = shapes.arrival_rate_tick(table, 0, user_rate=2)
    assert users == 13 and spawn >= users  # ceil(25 / 2), started at once
    assert shapes.arrival_rate_tick(table, 15, user_rate=2)[0] == 1  # never zero users
    assert shapes.arrival_rate_tick(table, 20, user_rate=2) is None


def test_users_for_rate_needs_a_positive_user_rate():
    assert shapes.users_for_rate(10, 2) == 5
    assert shapes.users_for_rate(10.0000000001, 2) == 5  # float noise does not add a user
    with pytest.raises(ValueError, match="user-rate"):
        shapes.users_for_rate(10, 0)


def test_stages_load_from_json(tmp_path):
    path = tmp_path / "stages.json"
    path.write_text(json.dumps([{"seconds": 3, "rps": 4}, {"seconds": 2, "users": 5, "spawn_rate": 1}]))
    assert shapes.load_stages(str(path)) == (Stage(3, rps=4), Stage(2, users=5, spawn_rate=1))


def test_no_shape_unless_asked(monkeypatch):
    monkeypatch.delenv(shapes.SHAPE_ENV, raising=False)
    assert shapes.select_shape() is None
    assert shapes.select_shape("none") is None
    with pytest.raises(ValueError, match="step, arrival"):
        shapes.select_shape("sawtooth")


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
    assert pacer.lateness_s == 0


def test_pacer_reports_lateness_when_a_slow_answer_makes_the_user_fall_behind():
    clock = FakeClock()
    pacer = Pacer(rate=2, phase=0.0, clock=clock)
    pacer.next_wait(2)                          # scheduled at t=100
    clock.now += 1.3                            # the answer took 1.3 s
    assert pacer.next_wait(2) == 0.0            # send at once (open loop: no skipped request)...
    assert pacer.lateness_s == pytest.approx(0.8)  # ...0.8 s behind its t=100.5 schedule
    assert pacer.next_wait(2) == 0.0            # the t=101 start is also overdue
    assert pacer.lateness_s == pytest.approx(0.3)


def test_pacer_restarts_its_schedule_when_the_rate_changes():
    clock = FakeClock()
    pacer = Pacer(rate=1, phase=0.5, clock=clock)
    assert pacer.next_wait(1) == pytest.approx(0.5)   # phase spreads users over one period
    clock.now += 10
    assert pacer.next_wait(4) == pytest.approx(0.125)  # new rate: phase/rate from now, no debt
    assert pacer.lateness_s == 0
