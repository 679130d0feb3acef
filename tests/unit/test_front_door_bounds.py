"""The front door's bound on waiting (stackctl.serve.wait_bounds, docs/faults.md): each model's bound
derived from its serving settings and rendered into its own location; with a real nginx in front
of a stand-in TorchServe that never answers, drops the connection or answers an error itself:
504 upstream_timeout at the bound, 503 worker_lost, and the upstream's own answer untouched.
"""
from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from handlers.sections import written
from handlers.settings import ServingSettings
from stackctl.catalog.archive_files import CONFIG_FILE, MANIFEST
from stackctl.catalog.specs import load_specs
from stackctl.serve import front_door, wait_bounds
from stackctl.serve.native import free_port
from tests.standin import RawUpstream
from tests.unit.test_front_door import needs_nginx

DEFAULT_TIMEOUT = front_door.default_response_timeout()


def _fake_archive(store: Path, model: str, serving: dict | ServingSettings) -> None:
    """An archive as far as the front door reads one: its manifest and model-config.yaml."""
    store.mkdir(parents=True, exist_ok=True)
    keys = written(serving) if isinstance(serving, ServingSettings) else serving
    with zipfile.ZipFile(store / f"{model}.mar", "w") as z:
        z.writestr(MANIFEST, json.dumps({"model": {"modelName": model, "configFile": CONFIG_FILE}}))
        z.writestr(CONFIG_FILE, yaml.safe_dump({**keys, "handler": {"name": model}}))


def test_the_bound_is_queue_wait_plus_batch_delay_plus_response_timeout_plus_margin() -> None:
    bound = wait_bounds.from_serving("m", ServingSettings.from_config({"responseTimeout": 7, "maxBatchDelay": 250}), DEFAULT_TIMEOUT)
    assert bound.queue_wait_s == 7
    assert bound.seconds == math.ceil(7 + 0.25 + 7 + wait_bounds.MARGIN_S)
    # Without settings, TorchServe's defaults: config.properties' default_response_timeout, 100 ms.
    default = wait_bounds.from_serving("m", ServingSettings.from_config({}), DEFAULT_TIMEOUT)
    assert default.seconds == math.ceil(2 * DEFAULT_TIMEOUT + 0.1 + wait_bounds.MARGIN_S)


def test_each_spec_gets_its_own_bound_in_its_own_location(tmp_path: Path) -> None:
    specs = load_specs()
    for spec in specs:
        _fake_archive(tmp_path / "model_store", spec.name, spec.serving)
    conf = front_door.render(tmp_path / "door", "127.0.0.1:1", "127.0.0.1:2", model_store=tmp_path / "model_store").read_text()
    assert "{{" not in conf and "3600s" not in conf, "no wait is left at an hour"
    for spec in specs:
        seconds = wait_bounds.from_serving(spec.name, spec.serving, DEFAULT_TIMEOUT).seconds
        block = re.search(r"location ~ \^/\(predictions\|explanations\)/" + re.escape(re.escape(spec.name))
                          + r"\(/\|\$\) \{(.*?)\}", conf, re.DOTALL)
        assert block, f"no location for {spec.name}"
        # The location checks the body's size, then hands the request to its named proxy location.
        named = re.search(r"error_page 418 = (@\w+);", block.group(1))
        assert named, f"{spec.name}'s location hands over to no named location"
        proxy = re.search(r"location " + named.group(1) + r" \{(.*?)\}", conf, re.DOTALL)
        assert proxy and f"proxy_read_timeout {seconds}s;" in proxy.group(1)
        assert f"model {spec.name} gave no answer within {seconds} s" in conf
    longest = max(wait_bounds.from_serving(s.name, s.serving, DEFAULT_TIMEOUT).seconds for s in specs)
    assert f"        proxy_read_timeout {max(longest, wait_bounds.longest({}, DEFAULT_TIMEOUT))}s;" in conf


def test_versions_of_a_model_share_the_longest_bound(tmp_path: Path) -> None:
    _fake_archive(tmp_path / "model_store", "m", {"responseTimeout": 5})
    _fake_archive(tmp_path / "model_store", "m@2.0", {"responseTimeout": 9})
    bounds = wait_bounds.from_store(tmp_path / "model_store", DEFAULT_TIMEOUT)
    assert list(bounds) == ["m"] and bounds["m"].response_timeout_s == 9


class _StandIn(RawUpstream):
    """A TorchServe stand-in on a raw socket, acting on the model named in the request path:
    `silent` never answers, `dropped` closes the connection, `refusing` answers 413 itself."""

    def __init__(self) -> None:
        self.held: list[socket.socket] = []
        super().__init__()

    def _answer(self, conn: socket.socket) -> None:
        head = conn.recv(65536).decode("latin-1")
        if "/predictions/silent" in head:
            self.held.append(conn)
        elif "/predictions/dropped" in head:
            conn.close()
        else:
            body = b'{"error": {"code": 413, "type": "text_too_long", "message": "from the handler"}}'
            conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            conn.close()

    def close(self) -> None:
        self.server.close()
        for conn in self.held:
            conn.close()


def _start_door(tmp_path: Path, upstream_port: int) -> tuple[subprocess.Popen, str]:
    store = tmp_path / "model_store"
    for model in ("silent", "dropped", "refusing"):
        _fake_archive(store, model, {"responseTimeout": 0, "maxBatchDelay": 0})
    port = free_port()
    conf = front_door.render(tmp_path / "door", f"127.0.0.1:{port}", f"127.0.0.1:{upstream_port}", model_store=store)
    nginx = subprocess.Popen(front_door.command(conf), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert nginx.poll() is None and time.monotonic() < deadline, "nginx did not listen within 10 s"
        time.sleep(0.05)
    return nginx, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    stand_in = _StandIn()
    nginx, url = _start_door(tmp_path_factory.mktemp("bounds"), stand_in.port)
    try:
        yield url
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        stand_in.close()


@needs_nginx
def test_a_request_never_answered_gets_504_naming_the_model_at_its_bound(door: str) -> None:
    bound = wait_bounds.WaitBound("silent", 0, 0).seconds
    started = time.monotonic()
    response = requests.post(f"{door}/predictions/silent", data=b"x", timeout=bound + 30)
    waited = time.monotonic() - started
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["code"] == 504 and error["type"] == "upstream_timeout"
    assert error["message"].startswith(f"model silent gave no answer within {bound} s")
    assert bound - 1 <= waited <= bound + 5, waited


@needs_nginx
def test_a_connection_dropped_mid_request_gets_503_worker_lost_naming_the_model(door: str) -> None:
    response = requests.post(f"{door}/predictions/dropped/1.0", data=b"x", timeout=30)
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "worker_lost"
    assert response.json()["error"]["message"].startswith("model dropped: ")


@needs_nginx
def test_the_upstreams_own_error_answers_pass_through_untouched(door: str) -> None:
    response = requests.post(f"{door}/predictions/refusing", data=b"x", timeout=30)
    assert response.status_code == 413 and response.json()["error"]["type"] == "text_too_long"


@needs_nginx
def test_no_server_behind_the_door_is_still_502_bad_gateway(tmp_path: Path) -> None:
    nginx, url = _start_door(tmp_path, free_port())  # nothing listens there
    try:
        for path in ("/predictions/silent", "/ping"):
            response = requests.post(f"{url}{path}", data=b"x", timeout=30)
            assert response.status_code == 502, path
            assert json.loads(response.text)["error"]["type"] == "bad_gateway"
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
