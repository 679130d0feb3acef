"""A job TorchServe loses, and the front door's bound answering it (docs/faults.md, "Where a job
is lost").

TorchServe 0.12's worker thread gathers a batch (Model.pollBatch: the first job, then up to
maxBatchDelay for more) before it sends anything to its worker process. When that process dies
meanwhile, the thread is interrupted in the middle of the gathering; the jobs it holds are neither
answered nor put back (WorkerThread.run's `finally` answers only a batch already sent), so the
client waits for ever. Here the window is made wide (one worker, maxBatchDelay 3 s) and the
worker is killed inside it: TorchServe alone never answers; through the front door the client
gets 504 upstream_timeout naming the model at the model's bound.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from stackctl.catalog.specs import get_spec
from stackctl.serve import front_door, wait_bounds
from stackctl.serve.native import NativeStack, Ports
from tests.variant_archives import with_serving

GATHER_MS = 3000
SERVING = {"minWorkers": 1, "maxWorkers": 1, "batchSize": 8, "maxBatchDelay": GATHER_MS, "responseTimeout": 5}
BODY = json.dumps({"text": "guten morgen"}).encode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    work = tmp_path_factory.mktemp("lost")
    source = get_spec("langid").archive_path
    if not source.is_file():
        pytest.fail(f"{source} missing: run `make models`", pytrace=False)
    store = work / "model_store"
    with_serving(source, store / "langid.mar", **SERVING)
    own = NativeStack(run_dir=work / "run", ports=Ports.free(), model_store=store)
    try:
        own.wait_for_torchserve(own.start_torchserve(), timeout=180)
        yield own
    finally:
        own.stop_all()


def _worker(stack: NativeStack) -> int:
    described = requests.get(f"{stack.management_url}/models/langid", timeout=5).json()
    (worker,) = described[0]["workers"]
    assert worker["status"] == "READY", worker
    return int(worker["pid"])


def _kill_while_gathering(stack: NativeStack, url: str, timeout: float) -> tuple[int | None, str, float]:
    """Send one request to an idle worker, kill the worker while its thread gathers the batch;
    (status or None when no answer came within `timeout`, body, seconds waited)."""
    pid = _worker(stack)
    outcome: dict[str, tuple[int | None, str, float]] = {}

    def send() -> None:
        started = time.monotonic()
        try:
            answer = requests.post(url, data=BODY, headers={"Content-Type": "application/json"}, timeout=timeout)
            outcome["r"] = (answer.status_code, answer.text, time.monotonic() - started)
        except requests.Timeout:
            outcome["r"] = (None, "", time.monotonic() - started)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(GATHER_MS / 1000 / 3)  # the fault's timing: inside the gathering window, not a wait for state
    os.kill(pid, signal.SIGKILL)
    sender.join()
    return outcome["r"]


def _wait_for_new_worker(stack: NativeStack, killed: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if _worker(stack) != killed:
                return
        except (AssertionError, ValueError, requests.RequestException):
            pass
        time.sleep(0.2)
    raise AssertionError("no new langid worker within 120 s")


def test_a_job_lost_while_its_batch_gathers_is_answered_504_by_the_front_door_at_the_bound(stack) -> None:
    bound = wait_bounds.from_store(stack.model_store, front_door.default_response_timeout())["langid"].seconds
    # TorchServe alone (its own port, behind the door): the job is lost; nothing answers it.
    direct = f"http://127.0.0.1:{stack.ports.torchserve_inference}/predictions/langid"
    pid = _worker(stack)
    status, body, waited = _kill_while_gathering(stack, direct, timeout=bound + 5.0)
    assert status is None, f"TorchServe answered the job it was expected to lose: {status} {body}"
    _wait_for_new_worker(stack, pid)
    # Through the front door: the same loss, answered at the model's bound, naming the model.
    pid = _worker(stack)
    status, body, waited = _kill_while_gathering(stack, f"{stack.inference_url}/predictions/langid", timeout=bound + 15.0)
    print(f"lost job through the front door: {status} after {waited:.1f} s (bound {bound} s): {body.strip()}")
    assert status == 504, body
    error = json.loads(body)["error"]
    assert error["type"] == "upstream_timeout" and error["message"].startswith(f"model langid gave no answer within {bound} s")
    assert waited <= bound + 2.0
    # And the model serves on: the replacement worker answers.
    _wait_for_new_worker(stack, pid)
    answer = requests.post(f"{stack.inference_url}/predictions/langid", data=BODY,
                           headers={"Content-Type": "application/json"}, timeout=bound)
    assert answer.status_code == 200, answer.text
