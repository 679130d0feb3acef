"""Token authorization turned on the documented way (stackctl/serve/token_auth.py, docs/security.md):
requests without the key are refused, with it they work, and the readiness probe works with it.

Own server (token auth is a start-up setting), running in its own directory so its key_file.json
lands there and never in the repository.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from stackctl import paths
from stackctl.catalog.specs import get_spec
from stackctl.serve import readiness, token_auth
from stackctl.serve.native import NativeStack, Ports


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NativeStack, Path]]:
    base = tmp_path_factory.mktemp("token-auth")
    store, workdir = base / "store", base / "auth"
    store.mkdir()
    workdir.mkdir()
    (store / "langid.mar").symlink_to(get_spec("langid").archive_path)  # one model: quicker start
    stack = NativeStack(run_dir=base / "run", ports=Ports.free(), model_store=store)
    proc = stack.start_torchserve(extra_env=token_auth.server_env(),
                                  command=token_auth.server_command(store, workdir))
    try:
        key_file = workdir / token_auth.KEY_FILE_NAME
        keys = token_auth.read_key_file(key_file, timeout=120)
        stack.wait_for_torchserve(proc, timeout=120, token=keys["management"])
        yield stack, key_file
    finally:
        stack.stop_all()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _refused(response: requests.Response) -> bool:
    # TorchServe 0.12 answers a missing/wrong key with 400 InvalidKeyException, not 401.
    return response.status_code == 400 and response.json().get("type") == "InvalidKeyException"


def test_key_file_is_private_and_written_in_the_server_directory(secured) -> None:
    _, key_file = secured
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not (paths.ROOT / token_auth.KEY_FILE_NAME).exists(), "key file leaked into the repository"


def test_requests_without_the_right_key_are_refused(secured) -> None:
    stack, key_file = secured
    keys = token_auth.read_key_file(key_file)
    predict = f"{stack.inference_url}/predictions/langid"
    assert _refused(requests.post(predict, json={"text": "hallo"}, timeout=10))
    assert _refused(requests.post(predict, json={"text": "hallo"}, headers=_bearer("wrong"), timeout=10))
    assert _refused(requests.post(predict, json={"text": "hallo"}, headers=_bearer(keys["management"]), timeout=10))
    assert _refused(requests.get(f"{stack.inference_url}/ping", timeout=10))
    assert _refused(requests.get(f"{stack.management_url}/models", timeout=10))
    assert _refused(requests.get(f"{stack.management_url}/models", headers=_bearer(keys["inference"]), timeout=10))


def test_requests_with_the_key_are_served(secured) -> None:
    stack, key_file = secured
    keys = token_auth.read_key_file(key_file)
    answer = requests.post(f"{stack.inference_url}/predictions/langid", json={"text": "guten morgen"},
                           headers=_bearer(keys["inference"]), timeout=30)
    assert answer.status_code == 200 and answer.json()["model"] == "langid", answer.text
    assert requests.get(f"{stack.inference_url}/ping", headers=_bearer(keys["inference"]), timeout=10).status_code == 200
    listing = requests.get(f"{stack.management_url}/models", headers=_bearer(keys["management"]), timeout=10)
    assert listing.status_code == 200 and [m["modelName"] for m in listing.json()["models"]] == ["langid"]
    # Prometheus still scrapes without a key (TorchServe does not guard the metrics port).
    assert requests.get(f"{stack.metrics_url}/metrics", timeout=10).status_code == 200


def test_client_helpers_read_the_key_from_the_mounted_file(secured, monkeypatch) -> None:
    stack, key_file = secured
    monkeypatch.setenv(token_auth.KEY_FILE_ENV, str(key_file))
    monkeypatch.delenv("TS_INFERENCE_KEY", raising=False)
    answer = requests.post(f"{stack.inference_url}/predictions/langid", json={"text": "bonjour"},
                           headers=token_auth.auth_headers("inference"), timeout=30)
    assert answer.status_code == 200, answer.text


def _ready(stack: NativeStack, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TS_KEY_FILE", "TS_MANAGEMENT_KEY")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "stackctl", "ready", "--management", stack.management_url],
                          cwd=paths.ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_readiness_probe_works_with_the_key(secured) -> None:
    stack, key_file = secured
    without = _ready(stack, {})
    assert without.returncode == 1 and "400" in without.stderr, without.stderr
    with_file = _ready(stack, {"TS_KEY_FILE": str(key_file)})
    assert with_file.returncode == 0, with_file.stderr
    with_key = _ready(stack, {"TS_MANAGEMENT_KEY": token_auth.read_key_file(key_file)["management"]})
    assert with_key.returncode == 0, with_key.stderr


def test_api_key_rotates_the_inference_key(secured) -> None:
    """Keys expire (token_expiration_min); the API key makes a new one and rewrites the file."""
    stack, key_file = secured
    old = token_auth.read_key_file(key_file)
    rotated = requests.get(f"{stack.management_url}/token", params={"type": "inference"},
                           headers=_bearer(old["API"]), timeout=10)
    assert rotated.status_code == 200, rotated.text
    new = token_auth.read_key_file(key_file, timeout=10)
    assert new["inference"] != old["inference"] and new["management"] == old["management"]
    predict = f"{stack.inference_url}/predictions/langid"
    assert _refused(requests.post(predict, json={"text": "ciao"}, headers=_bearer(old["inference"]), timeout=10))
    assert requests.post(predict, json={"text": "ciao"}, headers=_bearer(new["inference"]), timeout=30).status_code == 200


def _restart_gateway(stack: NativeStack, monkeypatch: pytest.MonkeyPatch, key_file: Path | None) -> None:
    """The stack's OIP gateway again, with the key file named by TS_KEY_FILE (or no key at all)."""
    stack.stop("oip-gateway")
    monkeypatch.delenv(token_auth.KEY_ENV["management"], raising=False)
    if key_file is None:
        monkeypatch.delenv(token_auth.KEY_FILE_ENV, raising=False)
    else:
        monkeypatch.setenv(token_auth.KEY_FILE_ENV, str(key_file))
    stack.start_oip_gateway()
    readiness.wait_for_http(f"{stack.inference_url}/v2", 60, lambda: stack.running("oip-gateway"))


def test_oip_ready_reads_the_management_key_from_the_key_file(secured, monkeypatch) -> None:
    """The OIP gateway's ready asks the management API for workers: without a key TorchServe
    refuses it (not ready); with TS_KEY_FILE, as the image sets it, the gateway reads the key."""
    stack, key_file = secured
    v2 = f"{stack.inference_url}/v2"
    _restart_gateway(stack, monkeypatch, None)
    assert requests.get(f"{v2}/health/ready", timeout=10).status_code == 503
    assert requests.get(f"{v2}/health/live", timeout=10).status_code == 200
    _restart_gateway(stack, monkeypatch, key_file)
    assert requests.get(f"{v2}/health/ready", timeout=10).status_code == 200
    assert requests.get(f"{v2}/models/langid/ready", timeout=10).status_code == 200
