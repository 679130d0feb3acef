"""A real OCI registry on loopback for the live push tests: Debian's docker-registry
(distribution 2.8; `make engine` installs it), on a free 127.0.0.1 port with its storage in a
temporary folder. The engine pushes to 127.0.0.0/8 over plain HTTP without configuration."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stackctl.serve.native import free_port

MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
))
READY_WITHIN_S = 30


class Registry:
    def __init__(self, port: int) -> None:
        self.host = f"127.0.0.1:{port}"
        self.base = f"http://{self.host}/v2"

    def request(self, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(f"{self.base}/{path}", method=method, headers={"Accept": MANIFEST_TYPES})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def digest(self, repository: str, reference: str) -> str:
        """The manifest digest the registry serves for a tag (or digest)."""
        status, headers, _ = self.request(f"{repository}/manifests/{reference}", method="HEAD")
        assert status == 200, f"{repository}:{reference} not in the registry ({status})"
        return headers["Docker-Content-Digest"]

    def manifest(self, repository: str, reference: str) -> dict:
        status, _, body = self.request(f"{repository}/manifests/{reference}")
        assert status == 200, f"{repository}@{reference}: {status} {body[:200]!r}"
        return json.loads(body)

    def blob(self, repository: str, digest: str) -> bytes:
        status, _, body = self.request(f"{repository}/blobs/{digest}")
        assert status == 200, f"{repository} blob {digest}: {status}"
        return body

    def has_blob(self, repository: str, digest: str) -> bool:
        return self.request(f"{repository}/blobs/{digest}", method="HEAD")[0] == 200


@contextmanager
def running_registry(storage: Path) -> Iterator[Registry]:
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("no docker-registry here: `make engine` installs Debian's (distribution 2.8)", pytrace=False)
    registry = Registry(free_port())
    config = storage / "config.yml"
    config.write_text(json.dumps({  # JSON is YAML: no templating of a YAML text
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(storage / "data")}, "delete": {"enabled": True}},
        "http": {"addr": registry.host},
    }))
    log = (storage / "registry.log").open("wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        while True:
            try:
                if registry.request("")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, f"docker-registry exited: {(storage / 'registry.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "docker-registry did not answer /v2/"
            time.sleep(0.2)   # poll interval
        yield registry
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
