"""The front door's Open Inference Protocol routes (stackctl.serve.front_door_oip), with a real nginx
in front of a stand-in TorchServe that echoes what reaches it: v2 infer becomes /predictions with
`X-Inference-Protocol: v2`, which no client can set elsewhere, and the answers nginx or TorchServe
give on v2 paths carry the OIP error shape with the codes and texts of /predictions.
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from stackctl import paths
from stackctl.serve import front_door, oip_models
from stackctl.serve.native import free_port
from tests.unit.test_front_door import needs_nginx

SERVED = oip_models.served_versions(paths.MODEL_STORE)
pytestmark = [needs_nginx, pytest.mark.skipif("digits" not in SERVED, reason="needs the built digits archive")]
TORCHSERVE_404 = b'{"code": 404, "type": "ModelNotFoundException", "message": "Model not found: nope"}'


class _Echo(BaseHTTPRequestHandler):
    """TorchServe's inference API as far as the door can tell: 404 for models and versions it does
    not serve, else the path, headers and body that reached it."""
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        parts = self.path.split("/")   # ['', 'predictions', model, version?]
        known = parts[2] in SERVED and (len(parts) < 4 or parts[3] in SERVED[parts[2]])
        code, answer = (200, json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                         "body": body.decode("latin-1")}).encode()) if known else (404, TORCHSERVE_404)
        self.send_response(code)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=backend.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    port = free_port()
    conf = front_door.render(tmp_path_factory.mktemp("door"), f"127.0.0.1:{port}",
                             f"127.0.0.1:{backend.server_address[1]}", env={"TS_MAX_REQUEST_SIZE": "65536"})
    nginx = subprocess.Popen(front_door.command(conf), stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            assert nginx.poll() is None, nginx.stderr.read().decode() if nginx.stderr else ""
            try:
                requests.get(url, timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "nginx did not listen within 10 s"
                time.sleep(0.05)
        yield url
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        backend.shutdown()


def _version() -> str:
    return SERVED["digits"][0]


def test_v2_infer_reaches_torchserve_as_predictions_with_the_protocol_header(door: str) -> None:
    sent = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "2",
            "X-Inference-Protocol": "forged"}
    for path, expected in (("/v2/models/digits/infer", "/predictions/digits"),
                           (f"/v2/models/digits/versions/{_version()}/infer", f"/predictions/digits/{_version()}")):
        seen = requests.post(f"{door}{path}", data=b"{}xyz", headers=sent, timeout=10).json()
        assert seen["path"] == expected
        assert seen["headers"]["x-inference-protocol"] == "v2"
        assert seen["headers"]["inference-header-content-length"] == "2"
        assert seen["headers"]["content-type"] == "application/octet-stream"
        assert seen["body"] == "{}xyz"


def test_a_client_cannot_set_the_protocol_header_on_other_paths(door: str) -> None:
    seen = requests.post(f"{door}/predictions/digits", data=b"x", headers={"X-Inference-Protocol": "v2"}, timeout=10)
    assert "x-inference-protocol" not in seen.json()["headers"]


def test_unknown_models_and_versions_get_404_in_the_oip_shape(door: str) -> None:
    nope = requests.post(f"{door}/v2/models/nope/infer", json={}, timeout=10)
    assert nope.status_code == 404
    assert nope.json() == {"error": f"model_not_found: model 'nope' is not served here (served: {', '.join(sorted(SERVED))})"}
    version = requests.post(f"{door}/v2/models/digits/versions/9.9/infer", json={}, timeout=10)
    assert version.status_code == 404
    # The gateway's metadata routes say the same (stackctl.serve.oip_models.Catalog.get).
    catalog = oip_models.read_catalog(paths.MODEL_STORE)
    with pytest.raises(oip_models.UnknownModel) as raised:
        catalog.get("digits", "9.9")
    assert version.json() == {"error": str(raised.value)}


def test_a_body_over_the_limit_gets_413_in_the_oip_shape(door: str) -> None:
    answer = requests.post(f"{door}/v2/models/digits/infer", data=b"x" * 70000, timeout=10)
    assert answer.status_code == 413
    assert answer.json() == {"error": "payload_too_large: request body is larger than 65536 bytes (max_request_size)"}


def test_get_routes_go_to_the_gateway_and_say_so_when_it_is_down(door: str) -> None:
    for path in ("/v2", "/v2/health/ready", "/v2/models/digits"):
        answer = requests.get(f"{door}{path}", timeout=10)
        assert answer.status_code == 502
        assert answer.json()["error"].startswith("bad_gateway: the OIP gateway is not answering")
