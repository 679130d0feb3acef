"""The front door's config (stackctl.serve.front_door, config/front-door.conf.template): rendered from
the same config.properties TorchServe reads, accepted by nginx, and, with a stand-in backend that
echoes what reaches it, passing form-urlencoded bodies on intact and every other request untouched.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from handlers import payload
from stackctl import paths
from stackctl.serve import front_door
from stackctl.serve.native import free_port

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed: `make system-deps` installs it")


def test_the_body_limit_is_torchserves_max_request_size(tmp_path: Path) -> None:
    limit = front_door.server_setting("max_request_size")
    assert limit.isdigit() and f"max_request_size={limit}\n" in paths.SERVER_CONFIG.read_text()
    conf = front_door.render(tmp_path, "127.0.0.1:1", "127.0.0.1:2").read_text()
    assert f"client_max_body_size {limit};" in conf
    assert "{{" not in conf, "every template field is filled"
    # TS_MAX_REQUEST_SIZE overrides the file for TorchServe (enable_envvars_config), so for the door too.
    other = front_door.render(tmp_path / "env", "127.0.0.1:1", "127.0.0.1:2", env={"TS_MAX_REQUEST_SIZE": "1024"})
    assert "client_max_body_size 1024;" in other.read_text()


def test_the_header_the_handlers_read_is_the_one_the_door_sets() -> None:
    assert f"proxy_set_header {payload.ORIGINAL_CONTENT_TYPE} " in front_door.TEMPLATE.read_text()


@pytest.mark.parametrize("address,expected", [("http://0.0.0.0:8080", "0.0.0.0:8080"),
                                              ("http://127.0.0.1:18080", "127.0.0.1:18080"),
                                              ("127.0.0.1:9", "127.0.0.1:9")])
def test_addresses_become_host_and_port(address: str, expected: str) -> None:
    assert front_door.host_port(address) == expected


@needs_nginx
def test_nginx_accepts_the_rendered_config(tmp_path: Path) -> None:
    conf = front_door.render(tmp_path, "127.0.0.1:8080", "127.0.0.1:8079")
    check = subprocess.run([*front_door.command(conf), "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr


TORCHSERVE_503 = (b'{"code": 503, "type": "ServiceUnavailableException", "message": "Model \\"digits\\" has no '
                  b'worker to serve inference request. Please use scale workers API to add workers."}')
HANDLER_500 = b'{"error": {"code": 500, "type": "internal_error", "message": "from the handler"}}'
HANDLER_413 = b'{"error": {"code": 413, "type": "text_too_long", "message": "from the handler"}}'


class _Echo(BaseHTTPRequestHandler):
    """Answers with the headers and body that reached it."""
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        for code, shape in ((503, TORCHSERVE_503), (500, HANDLER_500), (507, b'"Worker died."'), (413, HANDLER_413)):
            if self.path.endswith(f"/{code}"):   # TorchServe's own answers, as it gives them
                self.send_response(code)
                self.send_header("Content-Length", str(len(shape)))
                self.end_headers()
                self.wfile.write(shape)
                return
        answer = json.dumps({"headers": {k.lower(): v for k, v in self.headers.items()},
                             "body": body.decode("latin-1")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A front door in front of the echo backend; yields its URL."""
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=backend.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    port = free_port()
    conf = front_door.render(tmp_path_factory.mktemp("door"), f"127.0.0.1:{port}", f"127.0.0.1:{backend.server_address[1]}",
                             env={"TS_MAX_REQUEST_SIZE": "65536"})
    nginx = subprocess.Popen(front_door.command(conf), stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            assert nginx.poll() is None, nginx.stderr.read().decode() if nginx.stderr else ""
            try:
                requests.post(url, timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "nginx did not listen within 10 s"
                time.sleep(0.05)
        yield url
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        backend.shutdown()


def _through(url: str, body: bytes, content_type: str | None) -> dict:
    response = requests.post(f"{url}/predictions/m", data=body, timeout=10,
                             headers={"Content-Type": content_type} if content_type else {})
    assert response.status_code == 200, response.text
    return response.json()


@needs_nginx
@pytest.mark.parametrize("sent", ["application/x-www-form-urlencoded", "Application/X-WWW-Form-Urlencoded; charset=UTF-8"])
def test_a_form_urlencoded_body_goes_on_intact_as_octet_stream(door: str, sent: str) -> None:
    png = (paths.ROOT / "tests" / "data" / "digit-7.png").read_bytes()
    seen = _through(door, png, sent)
    assert seen["body"].encode("latin-1") == png
    assert seen["headers"]["content-type"] == "application/octet-stream"
    assert seen["headers"]["x-original-content-type"] == sent


@needs_nginx
@pytest.mark.parametrize("content_type", ["application/json", "text/plain; charset=utf-8", "image/png",
                                          "multipart/form-data; boundary=x", None])
def test_every_other_request_goes_on_untouched(door: str, content_type: str | None) -> None:
    seen = _through(door, b'{"text": "hallo"}', content_type)
    assert seen["body"] == '{"text": "hallo"}'
    assert seen["headers"].get("content-type") == content_type
    assert "x-original-content-type" not in seen["headers"]


@needs_nginx
def test_a_client_cannot_set_the_original_content_type_itself(door: str) -> None:
    response = requests.post(f"{door}/x", data=b"{}", timeout=10, headers={
        "Content-Type": "application/json", "X-Original-Content-Type": "application/x-www-form-urlencoded"})
    assert "x-original-content-type" not in response.json()["headers"]


@needs_nginx
def test_a_body_over_the_limit_gets_413_in_our_error_shape(door: str) -> None:
    response = requests.post(f"{door}/predictions/m", data=b"\0" * 65537, timeout=10,
                             headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == 413 and "65536" in response.json()["error"]["message"]


@needs_nginx
def test_torchserves_503_becomes_our_error_shape_naming_the_model(door: str) -> None:
    """TorchServe answers 503 in its own shape for a model with no worker or a full queue."""
    response = requests.post(f"{door}/predictions/digits/503", data=b"{}", timeout=10)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == 503 and error["type"] == "model_unavailable"
    assert error["message"].startswith("model digits cannot take this request now: it has no READY worker")


@needs_nginx
def test_a_url_cannot_inject_into_the_503_body(door: str) -> None:
    response = requests.post(f'{door}/predictions/a"b/503', data=b"{}", timeout=10)
    assert response.status_code == 503 and response.json()["error"]["message"].startswith("model (none) ")


@needs_nginx
@pytest.mark.parametrize("code, body", [(500, HANDLER_500), (507, b'"Worker died."'), (413, HANDLER_413)])
def test_other_error_answers_pass_through_untouched(door: str, code: int, body: bytes) -> None:
    response = requests.post(f"{door}/predictions/digits/{code}", data=b"{}", timeout=10)
    assert (response.status_code, response.content) == (code, body)


@needs_nginx
def test_no_model_server_behind_it_gets_502_in_our_error_shape(tmp_path: Path) -> None:
    port = free_port()
    conf = front_door.render(tmp_path, f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}", env={})
    nginx = subprocess.Popen(front_door.command(conf), stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                response = requests.post(f"http://127.0.0.1:{port}/predictions/digits", data=b"{}", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and nginx.poll() is None, "nginx did not listen"
                time.sleep(0.05)
        assert response.status_code == 502 and response.json()["error"]["type"] == "bad_gateway"
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
