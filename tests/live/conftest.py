"""Live tests: the images of docker/Dockerfile and the compose stack on a real Docker engine.

`make test` starts the engine and makes the local base images first (make engine base-images,
no-ops where present); run alone, these fail at once when no engine answers. Images are built
through docker/build.sh, the script `make build` uses (layer cache: seconds when nothing changed).
Every container, network and volume a test creates is removed in its fixture's teardown.
"""
from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.live.compose_stack import Stack
from tests.live.dockerlib import IMAGE, LOCUST_IMAGE, ROOT, docker


@pytest.fixture(scope="session")
def engine() -> None:
    result = docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False)
    if result.returncode != 0:
        pytest.fail(f"no Docker engine answers ({result.stderr.strip()}): run `make engine`", pytrace=False)


@pytest.fixture(scope="session")
def images(engine: None) -> dict[str, str]:
    """The CPU serving image and the Locust image, built as `make build` builds them, and the
    commit they were built from (what their revision label must say)."""
    revision = subprocess.run(["git", "rev-parse", "HEAD"], check=True, cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    for target in ("cpu", "loadtest"):
        result = subprocess.run(["docker/build.sh", target], check=False, cwd=ROOT, capture_output=True, text=True, timeout=3600)
        if result.returncode != 0:
            pytest.fail(f"docker/build.sh {target} failed:\n{(result.stdout + result.stderr)[-4000:]}", pytrace=False)
    return {"torchserve": IMAGE, "locust": LOCUST_IMAGE, "revision": revision}


@pytest.fixture
def container_names(engine: None) -> Iterator[list[str]]:
    """Names to give `docker run`; whatever runs under them is removed afterwards."""
    names: list[str] = []
    try:
        yield names
    finally:
        for name in names:
            docker("rm", "-f", "-v", name, check=False)


@pytest.fixture(scope="session")
def compose_stack(images: dict[str, str]) -> Iterator[Stack]:
    """`make up SERVICES="torchserve prometheus"` once for the session (tests/live/compose_stack.py);
    always brought down at its end."""
    stack = Stack.fresh()
    try:
        stack.compose("up", "torchserve", "prometheus")
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", check=False)
