"""The peers: what each is told (TorchServe's workers and batching), why one cannot run, and how a
rejected body becomes the same 4xx answer TorchServe gives."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from bench.peer_model import load_handler, predict_batch, rejection
from bench.peers import PEERS, Peer
from handlers.settings import ServingSettings
from loadtest.checks import AnswerShape, check_prediction
from stackctl.specs import get_spec

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
    assert Peer("fastapi", "FastAPI peer", "bench.peer", batching=False).missing() is None


def test_the_peers_answer_and_reject_like_torchserve() -> None:
    handler = load_handler(get_spec("digits").archive_path)
    with pytest.raises(Exception) as caught:
        handler.decode(b"not an image", "image/png")
    status, body = rejection(caught.value) or (0, {})
    assert status == 400 and body
    assert rejection(RuntimeError("a bug")) is None
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 255).save(buffer, "PNG")
    answers = predict_batch(handler, [handler.decode(buffer.getvalue(), "image/png")] * 2)
    assert len(answers) == 2 and all(check_prediction(AnswerShape("digits"), 200, json.dumps(a)) is None for a in answers)
