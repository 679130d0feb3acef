"""The TorchServe image on a real engine: it builds, runs as non-root, goes healthy through its
HEALTHCHECK, passes the existing integration checks through its published ports, and runs with
token auth under a read-only root (or exits non-zero where it cannot write its keys)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from stackctl import paths
from tests.containerized import ENV as CONTAINER_ENV
from tests.live.dockerlib import docker, inspect, unique, wait_exited, wait_healthy

ROOT = paths.ROOT
SERVER_UID = "10001"
# Mounts a read-only root needs: /tmp exec (worker sockets, unpacked archives; Docker's tmpfs is
# noexec by default) and logs owned by the server user.
READ_ONLY = ["--read-only", "--tmpfs", "/tmp:rw,exec,mode=1777",
             "--tmpfs", f"/app/logs:rw,uid={SERVER_UID},gid={SERVER_UID}"]
LOCKED_DOWN = ["--cap-drop", "ALL", "--security-opt", "no-new-privileges:true"]
PUBLISH = ["-p", "127.0.0.1::8080", "-p", "127.0.0.1::8081", "-p", "127.0.0.1::8082"]


def image_command(image: str) -> list[str]:
    return inspect(image)["Config"]["Cmd"]


@pytest.fixture(scope="module")
def server(images: dict[str, str]) -> Iterator[str]:
    name = unique("tsl-image")
    try:
        docker("run", "-d", "--name", name, *LOCKED_DOWN, *PUBLISH, images["torchserve"])
        wait_healthy(name)
        yield name
    finally:
        docker("rm", "-f", "-v", name, check=False)


def test_image_carries_its_labels_and_no_build_secret(images) -> None:
    config = inspect(images["torchserve"])["Config"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.revision"] == images["revision"]
    # The CA secret was passed to the build (docker/build.sh); nothing of it may be in the image.
    found = docker("run", "--rm", "--entrypoint", "sh", images["torchserve"], "-c",
                   "find /run/secrets /tmp -mindepth 1; ls /opt/venv/pip.conf /etc/pip.conf 2>/dev/null; echo end").stdout.split()
    assert found == ["end"], found


def test_runs_as_non_root(server: str) -> None:
    assert docker("exec", server, "id", "-u").stdout.strip() == SERVER_UID
    # `docker top` needs a PID column in its ps options.
    rows = [line.split() for line in docker("top", server, "-eo", "pid,user,comm").stdout.splitlines()[1:] if line.strip()]
    assert rows and all(row[1] == SERVER_UID for row in rows), rows


def test_healthcheck_is_the_image_readiness_command_and_healthy(server: str) -> None:
    state = inspect(server)["State"]
    assert state["Health"]["Status"] == "healthy"
    assert state["Health"]["Log"][-1]["ExitCode"] == 0


def test_existing_integration_checks_pass_against_the_container(server: str) -> None:
    """tests/integration's answers and hostile inputs, unchanged, with the `torchserve` fixture
    attached to this container. The queue-overflow case starts its own native server with a tiny
    queue; it checks the frontend, not the image, and is left to the native run."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         "tests/integration/test_serving.py", "tests/integration/test_hostile_inputs.py",
         "--deselect", "tests/integration/test_hostile_inputs.py::test_queue_overflow_answers_503_from_the_frontend"],
        check=False, cwd=ROOT, env={**os.environ, CONTAINER_ENV: server}, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout.split("\n")[-2], result.stdout[-500:]


def test_token_auth_works_under_a_read_only_root(images, container_names) -> None:
    name = unique("tsl-token")
    container_names.append(name)
    command = [arg for arg in image_command(images["torchserve"]) if arg != "--disable-token-auth"]
    docker("run", "-d", "--name", name, *READ_ONLY, *LOCKED_DOWN, *PUBLISH,
           "-e", "TS_DISABLE_TOKEN_AUTHORIZATION=false", images["torchserve"], *command)
    # Healthy means the health check found the management key in TS_KEY_FILE and got READY.
    wait_healthy(name)
    keys = json.loads(docker("exec", name, "cat", "/tmp/key_file.json").stdout)
    port = inspect(name)["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
    url = f"http://127.0.0.1:{port}/predictions/langid"
    refused = requests.post(url, json={"text": "guten morgen"}, timeout=30)
    assert refused.status_code == 400 and refused.json()["type"] == "InvalidKeyException"
    allowed = requests.post(url, json={"text": "guten morgen"}, timeout=30,
                            headers={"Authorization": f"Bearer {keys['inference']['key']}"})
    assert allowed.status_code == 200, allowed.text


def test_token_auth_without_a_writable_key_dir_exits_non_zero(images, container_names) -> None:
    name = unique("tsl-token-ro")
    container_names.append(name)
    command = [arg for arg in image_command(images["torchserve"]) if arg != "--disable-token-auth"]
    started = time.monotonic()
    docker("run", "-d", "--name", name, *READ_ONLY, *LOCKED_DOWN, "-e", "TS_DISABLE_TOKEN_AUTHORIZATION=false",
           "-e", "TS_KEY_DIR=/app", images["torchserve"], *command)
    state = wait_exited(name, timeout=180)
    assert state["ExitCode"] != 0, "TorchServe could not write its keys, and the container said success"
    logs = docker("logs", name).stderr
    assert "stopped on its own" in logs, logs[-2000:]
    print(f"exited {state['ExitCode']} after {time.monotonic() - started:.1f}s")


def test_make_push_dry_run_tags_the_names_the_overlays_deploy(images) -> None:
    """DRY_RUN=1 builds every variant (gpu too: no GPU needed), tags and prints the pushes; the
    tags are checked, then removed. The real push: tests/live/test_registry_push.py."""
    registry, version = "registry.invalid:5000/team", "0.0.0-test"
    expected = [f"{registry}/torchserve-stack/torchserve:{version}-cpu", f"{registry}/torchserve-stack/locust:{version}"]
    gpu = f"{registry}/torchserve-stack/torchserve:{version}-gpu"
    try:
        result = subprocess.run(["make", "--no-print-directory", "push", f"REGISTRY={registry}", f"VERSION={version}",
                                 "DRY_RUN=1"], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        for tag in expected:
            assert f"would push {tag}" in result.stdout
            assert inspect(tag)["Id"] == inspect(images["locust" if "locust" in tag else "torchserve"])["Id"]
        assert f"would push {gpu}" in result.stdout
        assert "STACK_VARIANT=gpu" in inspect(gpu)["Config"]["Env"]
    finally:
        for tag in [*expected, gpu]:
            docker("rmi", tag, check=False)
