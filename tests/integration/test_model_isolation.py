"""One model's failure harms no other (issue #29): a native stack (TorchServe, front door and a
real Prometheus with our rules) where digits loses every worker after the start, by the
management API's scale-to-0, as a crash-looping model ends up with none READY.

Then: langid keeps answering 200; `stackctl ready` (the probes' command) stays 0 and names
digits; /ping (the liveness probe) stays 200; digits answers 503 in our error shape naming it;
the generated TorchServeModelNoReadyWorker expression for digits returns a sample in Prometheus.
And a server that starts again without digits' workers is not ready (the marker is per start).
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from stackctl import paths
from stackctl.deploy import rules
from stackctl.serve import readiness
from stackctl.serve.native import NativeStack, Ports
from tests.native_server import serve_until_ready

DIGIT = (paths.ROOT / "tests" / "data" / "digit-7.png").read_bytes()
ALERT_DEADLINE_S = 240   # answers stop, the 1m windows empty (~60-70 s), plus scrape/eval steps


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    stack = serve_until_ready(NativeStack(run_dir=tmp_path_factory.mktemp("isolation"), ports=Ports.free()))
    try:
        proc = stack.start_prometheus()
        stack.wait_for_prometheus(proc)
        yield stack
    finally:
        stack.stop_all()


def _digits(stack: NativeStack) -> requests.Response:
    return requests.post(f"{stack.inference_url}/predictions/digits", data=DIGIT,
                         headers={"Content-Type": "image/png"}, timeout=30)


def _langid(stack: NativeStack) -> requests.Response:
    return requests.post(f"{stack.inference_url}/predictions/langid", json={"text": "hallo welt"}, timeout=30)


def _ready(stack: NativeStack) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stackctl", "ready", "--management", stack.management_url],
                          cwd=paths.ROOT, capture_output=True, text=True, timeout=60)


def _alert_expr(model: str) -> str:
    text = rules.render([s for s in rules.load_specs() if s.name == model])
    group = yaml.safe_load(text)["groups"][0]
    return next(r["expr"] for r in group["rules"] if r["alert"] == "TorchServeModelNoReadyWorker")


def _query(stack: NativeStack, expr: str) -> list:
    body = requests.get(f"{stack.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.fixture(scope="module")
def broken(stack: NativeStack) -> Iterator[NativeStack]:
    """Ready once (the marker is written), answers from both, then digits scaled to 0 workers
    while a client keeps sending it requests."""
    first = _ready(stack)
    assert first.returncode == 0, first.stderr
    assert readiness.ready_marker(stack.management_url).is_file()
    # Healthy first, as Prometheus sees it: both answered, and digits' alert expression quiet.
    healthy = f'model:ts_inference_answered_latency:rate1m{{model="digits"}} > 0 unless ({_alert_expr("digits")})'
    started = time.monotonic()
    while not _query(stack, healthy):
        assert _digits(stack).status_code == 200 and _langid(stack).status_code == 200
        assert time.monotonic() - started < 120, "Prometheus never saw digits answering"
        time.sleep(1)
    scaled = requests.put(f"{stack.management_url}/models/digits",
                          params={"min_worker": "0", "max_worker": "0", "synchronous": "true"}, timeout=120)
    assert scaled.status_code == 200, scaled.text
    stop = threading.Event()

    def client() -> None:   # digits' users keep trying, as they would
        while not stop.is_set():
            _digits(stack)
            stop.wait(1.0)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        yield stack
    finally:
        stop.set()
        thread.join(timeout=40)


def test_the_broken_model_answers_503_in_our_shape_naming_it(broken: NativeStack) -> None:
    response = _digits(broken)
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == 503 and error["type"] == "model_unavailable"
    assert error["message"].startswith("model digits ") and "no READY worker" in error["message"]


def test_the_other_model_keeps_answering(broken: NativeStack) -> None:
    answers = [_langid(broken) for _ in range(10)]
    assert [r.status_code for r in answers] == [200] * 10
    assert answers[0].json()["model"] == "langid"


def test_readiness_and_liveness_stay_up_and_name_the_model(broken: NativeStack) -> None:
    ready = _ready(broken)
    assert ready.returncode == 0, ready.stderr
    assert "no READY worker for: digits" in ready.stderr
    assert requests.get(f"{broken.inference_url}/ping", timeout=10).status_code == 200


def test_its_alert_expression_fires_in_prometheus(broken: NativeStack) -> None:
    expr, started = _alert_expr("digits"), time.monotonic()
    while True:
        if _query(broken, expr):
            break
        assert time.monotonic() - started < ALERT_DEADLINE_S, f"{expr} still empty after {ALERT_DEADLINE_S} s"
        time.sleep(2)
    print(f"TorchServeModelNoReadyWorker{{model=digits}} expression true {time.monotonic() - started:.0f} s "
          "after the scale to 0")
    assert _query(broken, _alert_expr("langid")) == [], "langid is healthy: its alert must stay quiet"


def test_a_fresh_start_without_the_model_is_not_ready(broken: NativeStack, tmp_path: Path) -> None:
    """The launchers clear the marker before TorchServe starts: without it, digits at 0 workers
    means not ready, so a rollout whose model does not load stops at its first pod."""
    readiness.clear_marker(broken.management_url)
    ready = _ready(broken)
    assert ready.returncode == 1 and "no READY worker for: digits" in ready.stderr, ready.stderr
    assert not readiness.ready_marker(broken.management_url).exists()
