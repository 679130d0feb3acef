"""The low-load floor: the no-op archive variant, its answers, and the per-request breakdown."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from ts.context import Context

from bench import floor, noop_handler
from loadtest.checks import answer_shape, check_prediction
from stackctl.catalog.archive_files import MANIFEST, read_config
from stackctl.catalog.specs import get_spec


def test_noop_variant_archive(tmp_path: Path) -> None:
    spec = get_spec("digits")
    out = floor.noop_variant(spec, spec.archive_path, tmp_path / "model_store", "digits")
    config = read_config(out)
    assert (config["batchSize"], config["maxBatchDelay"], config["maxWorkers"]) == (1, 0, 1)
    assert config["handler"]["answer_as"] == "digits" and config["handler"]["answer"] == floor.noop_answer(spec)
    with zipfile.ZipFile(out) as z:
        manifest = json.loads(z.read(MANIFEST))
        assert manifest["model"]["handler"] == "noop_handler.py" and manifest["model"]["modelName"] == "digits-noop"
        assert z.read("noop_handler.py") == floor.NOOP_HANDLER.read_bytes()


def test_noop_answers_pass_the_load_generators_check() -> None:
    """With the model's labels and top_k: the bench's answer check counts anything else as a failure."""
    spec = get_spec("digits")
    handler = {"answer_as": "digits", "answer": floor.noop_answer(spec)}
    context = Context("digits-noop", ".", {}, 2, None, "0.12.0", model_yaml_config={"handler": handler})
    assert noop_handler.handle(None, context) is None
    answers = noop_handler.handle([{"body": b"x"}, {"body": b"y"}], context)
    assert answers is not None and len(answers) == 2
    shape = answer_shape(spec)
    assert shape.labels and shape.top_k
    assert all(check_prediction(shape, 200, json.dumps(a)) is None for a in answers)


def test_breakdown_splits_one_request_into_its_parts() -> None:
    before = {"requests": 100.0, "frontend_us": 1_000_000.0, "queue_us": 500_000.0, "handler_s": 0.2, "handled": 100.0}
    # 50 requests: 14 ms each in the frontend, of which 10 ms queue and 3 ms handler; the client saw 15 ms
    after = {"requests": 150.0, "frontend_us": 1_700_000.0, "queue_us": 1_000_000.0, "handler_s": 0.35,
             "handled": 150.0}
    b = floor.breakdown(before, after, 15.0)
    assert b["requests"] == 50 and b["frontend total ms"] == 14.0 and b["queue wait ms"] == 10.0
    assert b["handler ms"] == 3.0 and b["batch window + worker IPC + frontend code ms"] == 1.0
    assert b["outside the frontend (client, loopback HTTP; p50 - mean) ms"] == 1.0
    assert floor.breakdown(before, before, 15.0) == {}
