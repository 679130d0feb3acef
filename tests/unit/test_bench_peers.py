"""The peers: what each is told (TorchServe's workers and batching), why one cannot run, and how a
rejected body becomes the same 4xx answer TorchServe gives."""
from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from bench.peer_model import answer_uploads, decode_or_reject, load_core
from bench.peers import PEERS, Peer
from handlers.settings import ServingSettings
from loadtest.checks import AnswerShape, check_prediction
from stackctl.catalog.specs import get_spec

SERVING = ServingSettings.from_config({"minWorkers": 2, "maxWorkers": 2, "batchSize": 8, "maxBatchDelay": 2})


def test_each_peer_gets_torchserves_workers_and_the_batchers_its_batching() -> None:
    by_name = {p.name: p for p in PEERS}
    fastapi = by_name["fastapi"].command(Path("d.mar"), "digits", SERVING)
    assert fastapi[fastapi.index("--workers") + 1] == "2" and "--max-batch-size" not in fastapi
    litserve = by_name["litserve"].command(Path("d.mar"), "digits", SERVING)
    assert litserve[litserve.index("--max-batch-size") + 1] == "8"
    assert litserve[litserve.index("--batch-timeout-ms") + 1] == "2.0"
    assert by_name["bentoml"].describe(SERVING) == {"label": "BentoML peer", "processes": 2,
                                                    "batching": {"max_batch_size": 8, "batch_timeout_ms": None}}
    assert "--batch-timeout-ms" not in by_name["bentoml"].command(Path("d.mar"), "digits", SERVING)


def test_a_peer_that_cannot_run_here_says_why(tmp_path: Path) -> None:
    missing_venv = Peer("bentoml", "BentoML peer", "bench.bentoml_peer", batching=True,
                        venv_python=tmp_path / "bin" / "python")
    assert "missing" in (missing_venv.missing() or "")
    assert Peer("no_such_package_x", "x", "x", batching=False).missing() == "no_such_package_x is not installed"
    assert Peer("fastapi", "FastAPI peer", "bench.fastapi_peer", batching=False).missing() is None


def test_the_peers_answer_and_reject_like_torchserve() -> None:
    core = load_core(get_spec("digits").archive_path)
    sample, rejected = decode_or_reject(core, b"not an image", "image/png")
    status, body = rejected or (0, {})
    assert sample is None and status == 400 and body
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buffer, "PNG")
    sample, rejected = decode_or_reject(core, buffer.getvalue(), "image/png")
    assert rejected is None
    answers = core.predict([sample] * 2)
    assert len(answers) == 2 and all(check_prediction(AnswerShape("digits"), 200, json.dumps(a)) is None for a in answers)
    both = answer_uploads(core, [(buffer.getvalue(), "image/png"), (b"not an image", "image/png")])
    assert [status for status, _ in both] == [200, 400] and both[0][1] == answers[0]


def test_a_decoder_bug_is_that_uploads_500_not_a_rejection() -> None:
    core = load_core(get_spec("digits").archive_path)

    def bug(_request):
        raise RuntimeError("a bug")

    core.task.decode = bug  # type: ignore[method-assign]
    sample, rejected = decode_or_reject(core, b"anything", "image/png")
    assert sample is None and rejected is not None
    assert (rejected[0], rejected[1]["error"]["type"]) == (500, "internal_error")
