"""The SLO gate's arithmetic: breaches, overrides, merging good and bad requests, the summary."""
from __future__ import annotations

import pytest

from loadtest import slo
from loadtest.measurement import Measurement
from stackctl.catalog.specs import Slo, load_specs

LIMIT = Slo(p95_ms=100, p99_ms=200, max_error_ratio=0.01)


def seen(**kw) -> Measurement:
    """A model's measurement as the gate's JSON stores it (the model under `model`)."""
    base = dict(model="m", requests=1000, failures=0, rps=50.0, p50_ms=20.0, p95_ms=80.0, p99_ms=150.0)
    return Measurement.from_json({**base, **kw})


def test_within_slo_passes():
    assert slo.check(LIMIT, seen()) == []


def test_each_limit_is_checked_and_described_with_its_margin():
    breaches = slo.check(LIMIT, seen(p95_ms=130, p99_ms=450, failures=25))
    assert [b.metric for b in breaches] == ["p95_ms", "p99_ms", "max_error_ratio"]
    text = [b.describe() for b in breaches]
    assert text[0] == "m: p95_ms 130 ms > 100 ms (+30 ms, 1.3x)"
    assert text[1].startswith("m: p99_ms 450 ms > 200 ms (+250 ms")
    assert text[2] == "m: error ratio 2.50% > 1.00% (+1.50 points)"


def test_limits_are_inclusive():
    assert slo.check(LIMIT, seen(p95_ms=100, p99_ms=200, failures=10)) == []


def test_a_model_without_requests_breaches():
    (breach,) = slo.check(LIMIT, seen(requests=0, p50_ms=None, p95_ms=None, p99_ms=None))
    assert breach.metric == "requests" and "not exercised" in breach.describe()


def test_merge_takes_latency_from_good_requests_and_counts_from_both():
    good = seen(model="digits", requests=90, failures=1, rps=9.0, p95_ms=120)
    bad = seen(model="digits [bad]", requests=10, failures=2, rps=1.0, p95_ms=3)
    merged = slo.merge("digits", good, bad)
    assert (merged.model, merged.requests, merged.failures, merged.rps, merged.p95_ms) == ("digits", 100, 3, 10.0, 120)
    assert slo.merge("x", None, None).requests == 0


def test_overrides_parse_and_apply_per_model_and_wildcard():
    parsed = slo.parse_overrides("digits.p95_ms=1, *.max_error_ratio=0")
    assert parsed == {"digits": {"p95_ms": 1.0}, "*": {"max_error_ratio": 0.0}}
    applied = slo.apply_overrides({"digits": LIMIT, "langid": LIMIT}, parsed)
    assert applied["digits"] == Slo(1, 200, 0) and applied["langid"] == Slo(100, 200, 0)
    assert slo.parse_overrides("") == {}


@pytest.mark.parametrize("text, message", [
    ("digits.p95=1", "key must be"), ("digits=1", "MODEL.KEY=NUMBER"), ("digits.p95_ms=fast", "MODEL.KEY"),
    ("digits.p95_ms=-1", ">= 0"), ("digits.p95_ms=nan", "finite"),
])
def test_bad_overrides_are_rejected(text, message):
    with pytest.raises(ValueError, match=message):
        slo.parse_overrides(text)


def test_override_for_unknown_model_is_rejected():
    with pytest.raises(ValueError, match="unknown model"):
        slo.apply_overrides({"digits": LIMIT}, {"digits2": {"p95_ms": 1}})


def test_judge_summary_and_exit_code():
    verdicts = slo.judge({"a": LIMIT, "b": LIMIT}, {"a": seen(model="a"), "b": seen(model="b", p95_ms=250)})
    assert [v.ok for v in verdicts] == [True, False]
    assert slo.exit_code(verdicts) == 1
    summary = slo.format_summary(verdicts)
    assert "PASS" in summary and "BREACH" in summary
    assert "SLO BREACH b: p95_ms 250 ms > 100 ms (+150 ms, 2.5x)" in summary
    assert slo.exit_code(verdicts[:1]) == 0
    assert "every model within its SLO" in slo.format_summary(verdicts[:1])


def test_a_model_missing_from_the_run_is_judged_as_not_exercised():
    (verdict,) = slo.judge({"a": LIMIT}, {})
    assert not verdict.ok and verdict.breaches[0].metric == "requests"


def test_verdicts_round_trip_through_json():
    verdicts = slo.judge({"a": LIMIT}, {"a": seen(model="a", p99_ms=999)})
    assert slo.from_json(slo.to_json(verdicts)) == verdicts


class FakeEntry:
    def __init__(self, n, fails, rps, p):
        self.num_requests, self.num_failures, self.total_rps, self._p = n, fails, rps, p

    def get_response_time_percentile(self, q):
        return self._p[q]


def test_observed_from_locust_entries_merges_the_bad_row():
    entries = {("digits", "POST"): FakeEntry(100, 0, 10.0, {0.5: 5, 0.95: 9, 0.99: 12}),
               ("digits [bad]", "POST"): FakeEntry(5, 1, 0.5, {0.5: 1, 0.95: 1, 0.99: 1})}
    got = slo.observed_from_locust(entries, ["digits", "langid"])
    assert got["digits"] == Measurement(model="digits", requests=105, failures=1, rps=10.5, p50_ms=5.0, p95_ms=9.0,
                                        p99_ms=12.0)
    assert got["langid"].requests == 0


def test_every_spec_has_a_usable_slo_and_weight():
    for spec in load_specs():
        assert 0 < spec.slo.p95_ms <= spec.slo.p99_ms
        assert 0 <= spec.slo.max_error_ratio < 1
        assert spec.load_weight >= 1
