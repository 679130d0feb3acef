"""The front door's graceful stop waits for requests within the models' responseTimeout
(stackctl.serve.front_door.stop_wait_s, stackctl.serve.container.stop_front_door): with a real nginx in front
of a stand-in TorchServe that answers after SLOW_S (longer than the 10 s the stop used to allow,
shorter than the model's responseTimeout), a request in flight when the stop begins gets its 200.
"""
from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import requests

from stackctl.serve import container, front_door, wait_bounds
from stackctl.serve.native import free_port
from tests.standin import RawUpstream
from tests.unit.test_front_door import needs_nginx
from tests.unit.test_front_door_bounds import _fake_archive

SLOW_S = 12.0
RESPONSE_TIMEOUT_S = 20


class _SlowUpstream(RawUpstream):
    """Answers every request 200 after SLOW_S; `arrived` is set once a request has reached it."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        super().__init__()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            self.arrived.set()
            time.sleep(SLOW_S)
            body = b'{"answer": "late but within responseTimeout"}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(body), body))


def start_door(tmp_path: Path, upstream_port: int, store: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    conf = front_door.render(tmp_path / "door", f"127.0.0.1:{port}", f"127.0.0.1:{upstream_port}", model_store=store)
    nginx = subprocess.Popen(front_door.command(conf))
    deadline = time.monotonic() + 10
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert nginx.poll() is None and time.monotonic() < deadline, "nginx did not listen within 10 s"
        time.sleep(0.05)
    return nginx, f"http://127.0.0.1:{port}"


def test_the_stop_waits_for_the_longest_bound(tmp_path: Path) -> None:
    _fake_archive(tmp_path / "store", "a", {"responseTimeout": 5, "maxBatchDelay": 0})
    _fake_archive(tmp_path / "store", "b", {"responseTimeout": 200, "maxBatchDelay": 1000})
    wait = front_door.stop_wait_s(model_store=tmp_path / "store")
    assert wait == wait_bounds.WaitBound("b", 200, 1000).seconds + front_door.STOP_MARGIN_S


@needs_nginx
def test_a_slow_request_within_its_response_timeout_is_answered_across_a_stop(tmp_path: Path) -> None:
    upstream = _SlowUpstream()
    _fake_archive(tmp_path / "store", "slow", {"responseTimeout": RESPONSE_TIMEOUT_S, "maxBatchDelay": 0})
    nginx, url = start_door(tmp_path, upstream.port, tmp_path / "store")
    wait = front_door.stop_wait_s(model_store=tmp_path / "store")
    assert wait > RESPONSE_TIMEOUT_S > SLOW_S > 10
    answers: list[requests.Response] = []
    client = threading.Thread(target=lambda: answers.append(
        requests.post(f"{url}/predictions/slow", data=b"x", timeout=wait + 30)))
    try:
        client.start()
        assert upstream.arrived.wait(timeout=10), "the request never reached the upstream"
        started = time.monotonic()
        container.stop_front_door(nginx, wait)
        stopped_after = time.monotonic() - started
        client.join(timeout=wait + 30)
    finally:
        if nginx.poll() is None:
            nginx.kill()
            nginx.wait()
        upstream.server.close()
    assert answers and answers[0].status_code == 200, answers
    assert answers[0].json() == {"answer": "late but within responseTimeout"}
    assert nginx.returncode == 0, "nginx finished gracefully, it was not killed"
    assert SLOW_S - 2 <= stopped_after < wait, stopped_after
