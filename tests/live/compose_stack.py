"""The compose stack of the live suite: `make up SERVICES="torchserve prometheus"` on free host
ports (the OIP gRPC port included) under a project name of its own. One per session (the
`compose_stack` fixture, tests/live/conftest.py), shared by test_compose_oip.py and
test_compose_stack.py, which stops it at its end."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from stackctl.serve.native import free_port
from tests.live.dockerlib import ROOT, docker, unique

PORTS = ("INFERENCE_PORT", "GRPC_PORT", "MANAGEMENT_PORT", "METRICS_PORT", "PROMETHEUS_PORT", "LOCUST_PORT",
         "GRAFANA_PORT")


@dataclass
class Stack:
    env: dict[str, str]
    project: str

    @classmethod
    def fresh(cls) -> Stack:
        """Settings for a new project (nothing started yet)."""
        ports: dict[str, str] = {}
        for name in PORTS:
            ports[name] = str(free_port(frozenset(map(int, ports.values()))))
        project = unique("tsl-compose")
        env = {**os.environ, **ports, "COMPOSE_PROJECT_NAME": project, "STACK_VARIANT": "cpu", "LOCUST_WORKERS": "1"}
        return cls(env=env, project=project)

    def compose(self, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker/compose.sh", *args], cwd=ROOT, env=self.env, capture_output=True,
                                text=True, timeout=timeout, check=False)
        if check:
            assert result.returncode == 0, f"compose.sh {' '.join(args)}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        return result

    def port(self, service: str, port: int) -> str:
        return self.compose("port", service, str(port)).stdout.strip()

    def url(self, service: str, port: int) -> str:
        return "http://" + self.port(service, port).replace("0.0.0.0", "127.0.0.1")

    def container(self, service: str) -> str:
        return self.compose("ps", "-a", "-q", service).stdout.split()[0]

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        return (docker("ps", "-a", "-q", "--filter", label).stdout.split()
                + docker("network", "ls", "-q", "--filter", label).stdout.split())
