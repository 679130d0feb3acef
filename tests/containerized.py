"""A TorchServe in a running container, with the attributes the integration tests use from a
native one (.inference_url, .management_url, .metrics_url, .proc.pid). Set TORCHSERVE_CONTAINER to
a container's name and tests/integration/conftest.py's `torchserve` fixture attaches to it instead
of starting a native server: tests/live run the integration checks against the image this way.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from types import SimpleNamespace

ENV = "TORCHSERVE_CONTAINER"
PORTS = {"inference": 8080, "management": 8081, "metrics": 8082}


def docker(*args: str, timeout: float = 60) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=timeout).stdout


@dataclass
class ContainerServer:
    name: str
    inference_url: str
    management_url: str
    metrics_url: str
    # The host's view of the container's PID 1 (tini): its children are the server's processes.
    proc: SimpleNamespace

    @classmethod
    def attach(cls, name: str) -> ContainerServer:
        state = json.loads(docker("inspect", name))[0]
        assert state["State"]["Running"], f"container {name} is not running"
        published = state["NetworkSettings"]["Ports"]
        urls = {}
        for api, port in PORTS.items():
            binding = published[f"{port}/tcp"][0]
            urls[f"{api}_url"] = f"http://{binding['HostIp'] or '127.0.0.1'}:{binding['HostPort']}"
        return cls(name=name, proc=SimpleNamespace(pid=state["State"]["Pid"]), **urls)
