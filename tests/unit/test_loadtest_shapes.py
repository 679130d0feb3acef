"""Load shapes as data: stage lookup, user counts for an arrival rate, open-loop pacing."""
from __future__ import annotations

import json

import pytest

from loadtest import shapes
from loadtest.shapes import Stage


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
