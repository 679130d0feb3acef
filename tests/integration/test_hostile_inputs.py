"""Hostile input against a real TorchServe: every case gets its documented status and error type,
no worker dies, bombs are refused from the header, and valid neighbours in a batch still get 200.

The table lives in tests/hostile.py (also rendered in docs/hostile-inputs.md). Tests run in file
order; the last one checks the shared server is still healthy after all of this.
"""
from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests

from stackctl.catalog.specs import get_spec
from stackctl.serve.native import NativeStack, Ports
from stackctl.serve.readiness import check_ready
from tests.hostile import (
    CASES,
    VALID,
    Case,
    digit_label,
    exif_rotated_jpeg,
    gif_bomb,
    jpeg_bomb,
    png_bomb,
)

MAX_REQUEST_SIZE = 8 * 1024 * 1024  # config/config.properties


def _post(base_url: str, case: Case, body: bytes | None = None) -> requests.Response:
    return requests.post(f"{base_url}/predictions/{case.model}", data=case.body() if body is None else body,
                         headers={"Content-Type": case.content_type}, timeout=60)


def _check(case: Case, response: requests.Response) -> None:
    assert response.status_code == case.status, (case.id, response.status_code, response.text[:300])
    answer = response.json()
    if case.error_type is None:
        assert answer["model"] == case.model and len(answer["top_k"]) == 3, answer
    else:
        error = answer["error"]
        assert (error["code"], error["type"]) == (case.status, case.error_type), answer
        assert error["message"], answer


def _workers(stack: NativeStack) -> dict[int, psutil.Process]:
    """The Python model workers under this server's launcher, by pid."""
    root = psutil.Process(stack.proc.pid)  # type: ignore[attr-defined]
    return {p.pid: p for p in root.children(recursive=True)
            if any("model_service_worker" in part for part in p.cmdline())}


@pytest.fixture(scope="module")
def workers_before(torchserve: NativeStack) -> dict[int, psutil.Process]:
    found = _workers(torchserve)
    assert len(found) >= 2, "expected one worker per model"
    return found


def test_the_table_covers_both_models_with_at_least_40_cases() -> None:
    counts = Counter(c.model for c in CASES)
    assert len(CASES) >= 40 and counts["digits"] >= 15 and counts["langid"] >= 15, counts
    assert len({(c.model, c.id) for c in CASES}) == len(CASES), "case ids must be unique per model"


def _expected(case: Case):
    """A case the server does not answer as documented yet fails strictly: a fix shows up."""
    marks = [pytest.mark.xfail(strict=True, reason=case.known_issue)] if case.known_issue else []
    return pytest.param(case, marks=marks, id=f"{case.model}-{case.id}")


@pytest.mark.parametrize("case", [_expected(c) for c in CASES])
def test_hostile_case_gets_its_documented_answer(torchserve, workers_before, case: Case) -> None:
    _check(case, _post(torchserve.inference_url, case))


DIGIT_7 = "tests/data/digit-7.png"
CURL_MISTAKES = [  # (model, curl arguments after the URL's own, status, the labelled request it equals)
    pytest.param("digits", ["--data-binary", f"@{DIGIT_7}"], 200, ("image/png", None),
                 id="digits-data-binary-without-H"),
    pytest.param("digits", ["-d", "this is not an image"], 400, None, id="digits-d-not-an-image"),
    pytest.param("langid", ["-d", "bonjour tout le monde"], 200, ("application/json", "bonjour tout le monde"),
                 id="langid-d"),
    pytest.param("langid", ["-d", "E=mc2"], 200, ("application/json", "E=mc2"), id="langid-d-equation"),
    pytest.param("langid", ["-F", "text=bonjour tout le monde"], 200, ("application/json", "bonjour tout le monde"),
                 id="langid-F-text"),
    pytest.param("langid", ["--data-urlencode", "text=bonjour tout le monde"], 200,
                 ("application/json", "bonjour tout le monde"), id="langid-data-urlencode"),
]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
@pytest.mark.parametrize("model,args,status,same_as", CURL_MISTAKES)
def test_everyday_curl_mistakes_get_an_answer(torchserve, repo_root: Path, model: str, args: list[str],
                                              status: int, same_as: tuple[str, str | None] | None) -> None:
    """The README's curl lines with the -H left out, sent by curl itself (its content types): the
    same answer as the request with the right Content-Type, or a 4xx that names the -H to send."""
    url = f"{torchserve.inference_url}/predictions/{model}"
    run = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args, url],
                         cwd=repo_root, capture_output=True, timeout=60, check=True)
    body, _, code = run.stdout.rpartition(b"\n")
    assert int(code) == status, (code, body[:300])
    answer = json.loads(body)
    if same_as is None:
        message = answer["error"]["message"]
        assert "-H 'Content-Type: image/png'" in message and "-H 'Content-Type: text/plain'" in message, message
        return
    content_type, text = same_as
    labelled = (repo_root / DIGIT_7).read_bytes() if text is None else json.dumps({"text": text}).encode()
    expected = requests.post(url, data=labelled, headers={"Content-Type": content_type}, timeout=30).json()
    assert answer["top_k"] == expected["top_k"], answer
    if model == "digits":
        assert answer["top_k"][0]["label"] == "7", answer


def test_exif_orientation_is_applied_before_classifying(torchserve) -> None:
    response = requests.post(f"{torchserve.inference_url}/predictions/digits", data=exif_rotated_jpeg(),
                             headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert response.status_code == 200 and response.json()["top_k"][0]["label"] == digit_label(), response.text


def test_decompression_bombs_are_refused_fast_without_memory_growth(torchserve, workers_before) -> None:
    rss_before = sum(p.memory_info().rss for p in workers_before.values())
    for make, content_type in ((png_bomb, "image/png"), (gif_bomb, "image/gif"), (jpeg_bomb, "image/jpeg")):
        body = make()
        response = requests.post(f"{torchserve.inference_url}/predictions/digits", data=body,
                                 headers={"Content-Type": content_type}, timeout=30)
        assert response.status_code == 413 and response.json()["error"]["type"] == "image_too_large", response.text
    growth = sum(p.memory_info().rss for p in workers_before.values()) - rss_before
    # A decoded 16000x16000 greyscale bomb alone would be 256 MB.
    assert growth < 64 * 1024 * 1024, f"worker RSS grew by {growth / 2**20:.0f} MiB while refusing bombs"


@pytest.mark.parametrize("model", ["digits", "langid"])
def test_body_over_max_request_size_gets_413_from_the_front_door(torchserve, model: str) -> None:
    body = b"\x00" * (MAX_REQUEST_SIZE + 1)
    response = requests.post(f"{torchserve.inference_url}/predictions/{model}", data=body,
                             headers={"Content-Type": "application/octet-stream"}, timeout=60)
    # nginx refuses it with TorchServe's own limit before TorchServe sees it, in our error shape.
    assert response.status_code == 413, (response.status_code, response.text[:200])
    assert response.json()["error"]["type"] == "payload_too_large", response.text[:200]


def test_valid_items_in_a_batch_with_hostile_neighbours_still_get_200(torchserve, workers_before) -> None:
    """Every case plus valid requests, shuffled and concurrent, so they share batches (batchSize
    16/32, maxBatchDelay 5 ms): each keeps its own answer."""
    mixed = [c for c in CASES if not c.id.endswith("bomb-256mpx") and not c.known_issue]
    mixed += [VALID["digits"], VALID["langid"]] * 20
    random.Random(8).shuffle(mixed)
    bodies = [c.body() for c in mixed]
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda i: _post(torchserve.inference_url, mixed[i], bodies[i]), range(len(mixed))))
    for case, response in zip(mixed, responses):
        _check(case, response)


def test_queue_overflow_answers_503_from_the_frontend(tmp_path: Path) -> None:
    """job_queue_size exceeded: TorchServe 0.12 refuses in the frontend with 503
    ServiceUnavailableException and a misleading "has no worker" message and no Retry-After;
    the front door answers it in our error shape, naming the model (documented in
    docs/hostile-inputs.md). Own server with a 2-deep queue and only langid, so the shared one
    is untouched."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "langid.mar").symlink_to(get_spec("langid").archive_path)
    stack = NativeStack(run_dir=tmp_path / "run", ports=Ports.free(), model_store=store)
    proc = stack.start_torchserve(extra_env={"TS_JOB_QUEUE_SIZE": "2"})
    try:
        stack.wait_for_torchserve(proc, timeout=120)
        url = f"{stack.inference_url}/predictions/langid"
        with ThreadPoolExecutor(48) as pool:
            responses = list(pool.map(lambda _: requests.post(url, json={"text": "hallo welt"}, timeout=60), range(96)))
        statuses = Counter(r.status_code for r in responses)
        assert set(statuses) <= {200, 503} and statuses[503] > 0 and statuses[200] > 0, statuses
        refused = next(r for r in responses if r.status_code == 503)
        error = refused.json()["error"]
        assert error["code"] == 503 and error["type"] == "model_unavailable"
        assert "model langid " in error["message"] and "queue is full" in error["message"]
        assert "Retry-After" not in refused.headers
        # Overload is transient: the next request is served.
        assert requests.post(url, json={"text": "hallo welt"}, timeout=30).status_code == 200
    finally:
        stack.stop_all()


def test_server_is_healthy_after_the_hostile_suite(torchserve, workers_before) -> None:
    """Last in this file: same workers (none crashed or was restarted), ready, valid answers."""
    assert check_ready(torchserve.management_url, {"digits", "langid"})
    now = _workers(torchserve)
    assert set(now) == set(workers_before), f"workers changed: {sorted(workers_before)} -> {sorted(now)}"
    for case in VALID.values():
        _check(case, _post(torchserve.inference_url, case))
