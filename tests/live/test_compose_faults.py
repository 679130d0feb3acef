"""Faults on the compose stack (docker-compose.yml's torchserve service, a project of its own on
free loopback ports), asserted by counts only: every request sent during the fault ends within
the front door's bound (answered, or refused while nothing listens), none hangs, and the stack
answers 200 with the same answers after. The measured run with every scenario is `make chaos
CHAOS_ARGS=--against-compose` (docs/faults.md)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from loadtest.chaos import compose
from stackctl.serve.readiness import NotReady, check_ready

BOUND_S = 66            # docs/faults.md: both models' bound on waiting
BODIES = {"langid": {"text": "guten morgen, wie geht es dir"}}
RESTART_WITHIN_S = 180  # the image's HEALTHCHECK start period leaves 120 s for the models


@pytest.fixture(scope="module")
def stack(images: dict[str, str]) -> Iterator[compose.ComposeStack]:
    stack = compose.ComposeStack.up(("torchserve",))
    try:
        yield stack
    finally:
        stack.down()


def _send(url: str, stop_at: float) -> list[str]:
    """Requests one after another until `stop_at`: each one's fate ("200", "503", "refused")."""
    fates = []
    while time.time() < stop_at:
        try:
            answer = requests.post(url, json=BODIES["langid"], timeout=BOUND_S + 10)
            fates.append(str(answer.status_code))
        except requests.ConnectionError:
            fates.append("refused")
            time.sleep(0.2)
        except requests.Timeout:
            fates.append("unanswered")
    return fates


def _ready_again(management: str, limit_s: float) -> bool:
    deadline = time.time() + limit_s
    while time.time() < deadline:
        try:
            check_ready(management)
            return True
        except NotReady:
            time.sleep(1)
    return False


def test_a_crashed_server_is_restarted_and_no_request_hangs(stack: compose.ComposeStack) -> None:
    """TorchServe's JVM SIGKILLed inside the container (a crash): the `restart: unless-stopped`
    policy restarts the container, no request waits past the bound, and it answers 200 again."""
    inference, management = stack.url("torchserve", 8080), stack.url("torchserve", 8081)
    url = f"{inference}/predictions/langid"
    before = requests.post(url, json=BODIES["langid"], timeout=BOUND_S)
    assert before.status_code == 200, before.text
    container = stack.container("torchserve")
    restarts = compose.restarted(container).split()[-1]
    with ThreadPoolExecutor(2) as pool:
        senders = [pool.submit(_send, url, time.time() + 20) for _ in range(2)]
        time.sleep(3)
        fault = compose.jvm_crash(container)
        fates = [fate for sender in senders for fate in sender.result()]
    assert fault.hits, "no JVM found in the container"
    assert _ready_again(management, RESTART_WITHIN_S), "readiness not back after the crash"
    assert compose.restarted(container).split() == ["running", str(int(restarts) + 1)]
    assert "unanswered" not in fates, fates
    assert fates.count("200") > 0, fates
    after = requests.post(url, json=BODIES["langid"], timeout=BOUND_S)
    assert after.status_code == 200
    assert [item["label"] for item in after.json()["top_k"]] == [item["label"] for item in before.json()["top_k"]]
