"""The front door's memory budget (config/front-door.conf.template): with a real nginx in front of
a stand-in TorchServe that holds every request until all UPLOADS have reached it, UPLOADS
concurrent 7 MiB bodies are all answered 200 while nginx's resident memory (master + worker)
stays under BUDGET_MIB: the bodies went to temp files, not memory (before, 4096 connections ×
an 8 MiB in-memory buffer each: these uploads alone held ~340 MiB).
"""
from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import psutil
import requests

from stackctl.serve import front_door
from stackctl.serve.native import free_port
from tests.standin import RawUpstream
from tests.unit.test_front_door import needs_nginx

UPLOADS = 48                       # < front_door.SPILLED_BODIES: none is refused
BODY = b"\x89PNG" + b"x" * (7 * 1024 * 1024 - 4)
BUDGET_MIB = 64


class _HoldingUpstream(RawUpstream):
    """Reads each request's body, then answers 200 (with the length it read) once UPLOADS bodies
    have arrived, so all of them are in nginx's hands at the same time."""

    def __init__(self) -> None:
        self.arrived = threading.Semaphore(0)
        self.release = threading.Event()
        super().__init__(backlog=128)

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            while len(body) < length:
                body += conn.recv(1 << 20)
            self.arrived.release()
            self.release.wait(timeout=120)
            answer = b'{"length": %d}' % len(body)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(answer), answer))


def _rss_mib(nginx: subprocess.Popen) -> float:
    master = psutil.Process(nginx.pid)
    return sum(p.memory_info().rss for p in [master, *master.children()]) / 2**20


@needs_nginx
def test_concurrent_large_uploads_stay_within_the_memory_budget(tmp_path: Path) -> None:
    upstream = _HoldingUpstream()
    port = free_port()
    conf = front_door.render(tmp_path / "door", f"127.0.0.1:{port}", f"127.0.0.1:{upstream.port}",
                             model_store=tmp_path / "empty-store")
    nginx = subprocess.Popen(front_door.command(conf))
    answers: list[requests.Response] = []
    peak = 0.0
    try:
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert nginx.poll() is None and time.monotonic() < deadline, "nginx did not listen within 10 s"
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/predictions/m"
        clients = [threading.Thread(target=lambda: answers.append(requests.post(url, data=BODY, timeout=180)))
                   for _ in range(UPLOADS)]
        for client in clients:
            client.start()
        for _ in range(UPLOADS):   # every body is in nginx's hands (read, spooled, passed on) at once
            while not upstream.arrived.acquire(timeout=0.05):
                peak = max(peak, _rss_mib(nginx))
                assert nginx.poll() is None
        peak = max(peak, _rss_mib(nginx))
        spooled_dir = tmp_path / "door" / "client_body"
        upstream.release.set()
        for client in clients:
            client.join(timeout=180)
    finally:
        upstream.release.set()
        nginx.terminate()
        nginx.wait(timeout=10)
        upstream.server.close()
    assert len(answers) == UPLOADS and {a.status_code for a in answers} == {200}, [a.status_code for a in answers]
    assert {a.json()["length"] for a in answers} == {len(BODY)}, "every body reached the upstream whole"
    print(f"nginx peak RSS {peak:.1f} MiB with {UPLOADS} uploads of 7 MiB in flight")
    assert peak < BUDGET_MIB, f"nginx held {peak:.1f} MiB with {UPLOADS} uploads of 7 MiB in flight"
    assert spooled_dir.is_dir()
