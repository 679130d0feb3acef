"""The docker CLI as the pod run (stackctl.pod.podrun) uses it: the client, the engine, images, host ports.

A failing docker command raises PodRunError: within a pod run it is one of the run's failures.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess

from stackctl.pod.pod_report import PodRunError


def docker_binary() -> str:
    found = os.environ.get("DOCKER") or shutil.which("docker")
    if not found:
        raise PodRunError("no docker client on PATH (set DOCKER=/path/to/docker)")
    return found


def docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([docker_binary(), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise PodRunError(f"docker {' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


def engine_answers() -> bool:
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False).returncode == 0
    except (PodRunError, subprocess.TimeoutExpired):
        return False


def image_present(image: str) -> bool:
    try:
        return docker("image", "inspect", image, timeout=30, check=False).returncode == 0
    except (PodRunError, subprocess.TimeoutExpired):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
