"""Session fixtures: ONE real TorchServe (and one real Prometheus scraping it) for the whole run.

Both start from the built archives (or TorchServe is a container's: tests/containerized.py) on free loopback ports through stackctl.serve.native — the same
code `make serve` uses — wait by polling (never fixed sleeps) and are always stopped.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackctl import paths
from stackctl.catalog.specs import load_specs
from stackctl.serve import readiness
from stackctl.serve.native import NativeStack, Ports
from tests import containerized
from tests.containerized import ContainerServer
from tests.native_server import serve_until_ready


def _require_archives() -> None:
    missing = [s.name for s in load_specs() if not s.archive_path.is_file()]
    if missing:
        pytest.fail(f"model archives missing for {missing}: run `make models` first", pytrace=False)


@pytest.fixture(scope="session")
def native_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    _require_archives()
    stack = NativeStack(run_dir=tmp_path_factory.mktemp("stack"), ports=Ports.free())
    try:
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="session")
def torchserve(request: pytest.FixtureRequest) -> NativeStack | ContainerServer:
    """A ready TorchServe: .inference_url, .management_url, .metrics_url, .proc (and .run_dir when
    native). With TORCHSERVE_CONTAINER=<name>, the server in that running container instead."""
    if os.environ.get(containerized.ENV):
        server = ContainerServer.attach(os.environ[containerized.ENV])
        readiness.wait_until_ready(server.management_url, timeout=240)
        return server
    native_stack: NativeStack = request.getfixturevalue("native_stack")
    return serve_until_ready(native_stack)


class PrometheusHandle:
    def __init__(self, stack: NativeStack, proc) -> None:
        self.stack = stack
        self.proc = proc
        self.url = stack.prometheus_url
        self.home: Path = stack.run_dir / "prometheus"


@pytest.fixture(scope="session")
def prometheus(torchserve: NativeStack) -> PrometheusHandle:
    """A real Prometheus with config/prometheus/ (rules included) scraping the session TorchServe."""
    proc = torchserve.start_prometheus()
    torchserve.wait_for_prometheus(proc)
    return PrometheusHandle(torchserve, proc)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return paths.ROOT
