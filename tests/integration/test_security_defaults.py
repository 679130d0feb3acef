"""Safe by default: no model registration from URLs (CVE-2023-43654 "ShellTorch" came in that
way), no unregistering, and nothing of the native server listens beyond loopback."""
from __future__ import annotations

import ipaddress

import psutil
import pytest
import requests
import yaml

from stackctl import paths
from stackctl.serve.readiness import model_status


def _properties() -> dict[str, str]:
    pairs = {}
    for line in paths.SERVER_CONFIG.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)  # Java's sockets show ::ffff:127.0.0.1
    return (mapped or address).is_loopback


@pytest.mark.parametrize("url", [
    "https://example.invalid/evil.mar",                  # the ShellTorch path: fetch and load remote code
    "http://127.0.0.1:1/evil.mar",
    "file:///etc/passwd",
    "digits.mar",                                          # even an archive from the local store
])
def test_registering_a_model_is_refused(torchserve, url: str) -> None:
    before = model_status(torchserve.management_url)
    response = requests.post(f"{torchserve.management_url}/models", params={"url": url, "model_name": "evil"},
                             timeout=10)
    assert response.status_code == 405, (response.status_code, response.text)
    assert response.json()["type"] == "MethodNotAllowedException"
    assert set(model_status(torchserve.management_url)) == set(before)


def test_unregistering_a_model_is_refused(torchserve) -> None:
    for path in ("/models/langid", "/models/langid/1.0"):
        response = requests.delete(f"{torchserve.management_url}{path}", timeout=10)
        assert response.status_code == 405, (path, response.status_code, response.text)
    assert {"digits", "langid"} <= set(model_status(torchserve.management_url))


def test_server_config_closes_the_management_surface() -> None:
    props = _properties()
    assert props["enable_model_api"] == "false"
    assert props["allowed_urls"] == "file://.*model_store.*", "archives only from the local model store"
    for key in ("inference_address", "management_address", "metrics_address"):
        assert props[key].startswith("http://127.0.0.1:"), f"{key}={props[key]}: natively loopback only"
    for key in ("grpc_inference_address", "grpc_management_address"):
        assert props[key] == "127.0.0.1", key
    assert int(props["max_request_size"]) == 8 * 1024 * 1024
    assert int(props["default_response_timeout"]) > 0


def test_native_server_listens_on_loopback_only(torchserve) -> None:
    """TorchServe, its front door (nginx on the inference port, TorchServe's own behind it) and the
    OIP gateway (gRPC, and its REST routes behind the door)."""
    roots = [psutil.Process(torchserve.proc.pid), psutil.Process(torchserve.pid("front-door")),
             psutil.Process(torchserve.pid("oip-gateway"))]
    listening = [c for root in roots for p in [root, *root.children(recursive=True)]
                 for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    ports = {c.laddr.port for c in listening}
    assert {torchserve.ports.inference, torchserve.torchserve_inference_port, torchserve.ports.management,
            torchserve.ports.metrics, torchserve.ports.oip_grpc, torchserve.ports.oip_rest} <= ports
    exposed = [c.laddr for c in listening if not _loopback(c.laddr.ip)]
    assert not exposed, f"listening beyond loopback: {exposed}"


def test_compose_publishes_management_and_metrics_on_localhost_only() -> None:
    compose = yaml.safe_load((paths.ROOT / "docker-compose.yml").read_text())
    ports = [str(p) for p in compose["services"]["torchserve"].get("ports", [])]
    for container_port in ("8081", "8082"):
        published = [p for p in ports if p.endswith(f":{container_port}")]
        assert published and all(p.startswith("127.0.0.1:") for p in published), published
