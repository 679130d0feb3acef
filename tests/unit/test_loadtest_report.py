"""Answer checks, report CSV parsing and chart (no server); the capacity search: test_loadtest_capacity.py."""
from __future__ import annotations

import csv
import json
from dataclasses import replace

from PIL import Image

from loadtest import checks, report, slo
from loadtest.measurement import Measurement
from stackctl.catalog.specs import load_specs

OK = json.dumps({"model": "digits", "top_k": [{"label": "7", "probability": 0.9}, {"label": "1", "probability": 0.05}]})


def test_check_prediction():
    digits, langid = checks.AnswerShape("digits"), checks.AnswerShape("langid")
    assert checks.check_prediction(digits, 200, OK) is None
    assert checks.check_prediction(langid, 200, OK) == "HTTP 200 but 'model' is 'digits'"
    assert checks.check_prediction(digits, 200, "nope") == "HTTP 200 with a body that is not JSON"
    assert "non-empty" in checks.check_prediction(digits, 200, '{"model": "digits", "top_k": []}')
    unsorted = json.dumps({"model": "digits", "top_k": [{"label": "a", "probability": 0.1},
                                                         {"label": "b", "probability": 0.9}]})
    assert "best first" in checks.check_prediction(digits, 200, unsorted)
    error = json.dumps({"error": {"code": 503, "type": "overloaded", "message": "x"}})
    assert checks.check_prediction(digits, 503, error) == "HTTP 503 (overloaded)"


def test_answers_are_checked_against_the_spec_label_set_and_top_k():
    """A model with no expected label per input (a user's own) is still checked for its shape."""
    (spec,) = [s for s in load_specs() if s.name == "digits"]
    shape = checks.answer_shape(spec)  # build/models/digits/labels.json: "0".."9", top_k 3
    assert shape == checks.AnswerShape("digits", 3, frozenset(str(d) for d in range(10)))
    three = [{"label": label, "probability": p} for label, p in (("7", 0.9), ("1", 0.05), ("2", 0.01))]
    assert checks.check_prediction(shape, 200, json.dumps({"model": "digits", "top_k": three})) is None
    assert checks.check_prediction(shape, 200, OK) == "HTTP 200 with 2 top_k entries, expected 3"
    stranger = [*three[:2], {"label": "cat", "probability": 0.01}]
    assert "not in the model's label set: ['cat']" in checks.check_prediction(
        shape, 200, json.dumps({"model": "digits", "top_k": stranger}))


def test_answer_shape_without_a_readable_label_file(tmp_path):
    (spec,) = [s for s in load_specs() if s.name == "digits"]
    shape = checks.answer_shape(replace(spec, labels=tmp_path / "absent.json"))
    assert shape == checks.AnswerShape("digits")
    assert checks.check_prediction(shape, 200, OK) is None


def test_check_rejection():
    body = json.dumps({"error": {"code": 413, "type": "text_too_long", "message": "x"}})
    assert checks.check_rejection(413, "text_too_long", 413, body) is None
    assert "got HTTP 400 text_too_long" in checks.check_rejection(413, "text_too_long", 400, body)
    assert "got HTTP 200 no error type" in checks.check_rejection(400, "invalid_json", 200, OK)


HISTORY_HEADER = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "50%", "66%", "75%",
                  "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%", "Total Request Count",
                  "Total Failure Count"]
STATS_HEADER = ["Type", "Name", "Request Count", "Failure Count", "Median Response Time", "Average Response Time",
                "Min Response Time", "Max Response Time", "Average Content Size", "Requests/s", "Failures/s",
                "50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]


def write_run(folder, models):
    with (folder / "locust_stats.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(STATS_HEADER)
        for name, n, fails, p95 in models:
            w.writerow(["POST", name, n, fails, 10, 12, 2, 90, 100, n / 10, 0, 10, 11, 12, 13, 14, p95, 60, 70, 80, 90, 90])
        w.writerow(["", "Aggregated", 1, 0, 10, 12, 2, 90, 100, 1, 0, 10, 11, 12, 13, 14, 15, 60, 70, 80, 90, 90])
    with (folder / "locust_stats_history.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HISTORY_HEADER)
        for t in range(1000, 1010):
            for name, *_ in models:
                started = t > 1000
                w.writerow([t, 4, "POST", name, 5 if started else 0, 0, *([10 * started] * 11), (t - 1000) * 5, 0])
            w.writerow([t, 4, "", "Aggregated", 10, 0, *(["N/A"] * 11), 0, 0])


def test_report_reads_csv_draws_a_png_and_judges(tmp_path):
    write_run(tmp_path, [("digits", 100, 0, 40), ("digits [bad]", 10, 0, 2), ("langid", 100, 5, 400)])
    verdicts, chart = report.build_report(tmp_path)
    by_model = {v.observed.model: v for v in verdicts}
    assert by_model["digits"].ok and by_model["digits"].observed.requests == 110
    assert not by_model["langid"].ok
    assert {b.metric for b in by_model["langid"].breaches} == {"p95_ms", "max_error_ratio"}
    with Image.open(chart) as image:
        image.verify()
        assert image.format == "PNG"


def test_report_prefers_the_gate_json_written_by_locust(tmp_path):
    write_run(tmp_path, [("digits", 100, 0, 40), ("langid", 100, 0, 40)])
    slos = {s.name: s.slo for s in load_specs()}
    exact = slo.judge(slos, {m: Measurement(model=m, requests=123, failures=0, rps=1.0, p50_ms=1, p95_ms=2, p99_ms=3)
                             for m in slos})
    (tmp_path / f"locust{slo.GATE_JSON_SUFFIX}").write_text(json.dumps(slo.to_json(exact)))
    verdicts, _ = report.build_report(tmp_path)
    assert [v.observed.requests for v in verdicts] == [123] * len(slos)


def test_history_skips_percentiles_while_the_window_is_empty(tmp_path):
    write_run(tmp_path, [("digits", 100, 0, 40)])
    series = report.history_by_model(tmp_path / "locust_stats_history.csv", ["digits"])["digits"]
    assert series.t[0] == 0 and series.values["95%"][0] is None and series.values["95%"][1] == 10
