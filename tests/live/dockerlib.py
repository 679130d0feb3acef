"""Helpers for the live tests: docker commands, names, and polling a container's state."""
from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest

from stackctl import paths

ROOT = paths.ROOT
IMAGE = "torchserve-stack/torchserve:cpu"
LOCUST_IMAGE = "torchserve-stack/locust:latest"
HEALTHY_WITHIN_S = 240      # the image's --start-period is 120 s; slow shared CI cores need more


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def inspect(name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_healthy(name: str, timeout: float = HEALTHY_WITHIN_S) -> dict:
    """Poll the engine's health status; fail at once if the container stops."""
    deadline = time.monotonic() + timeout
    while True:
        state = inspect(name)["State"]
        if state["Health"]["Status"] == "healthy":
            return state
        if not state["Running"]:
            logs = docker("logs", "--tail", "40", name, check=False)
            pytest.fail(f"{name} exited ({state['ExitCode']}) before it was healthy:\n{logs.stdout}{logs.stderr}")
        assert time.monotonic() < deadline, f"{name} not healthy within {timeout:.0f}s: {state['Health']}"
        time.sleep(1)   # poll interval


def wait_exited(name: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = inspect(name)["State"]
        if not state["Running"]:
            return state
        assert time.monotonic() < deadline, f"{name} still running after {timeout:.0f}s"
        time.sleep(0.5)
