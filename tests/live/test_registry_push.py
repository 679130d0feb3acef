"""`make push` against a real registry (Debian's docker-registry on loopback): every variant is
built and pushed, gpu included on this GPU-less host; the digests are recorded where the
documented path, `kubectl apply -k k8s/overlays/<overlay>`, renders them; and the registry serves
exactly those digests back. A push that cannot reach its registry fails and records nothing.

The overlays are a copy (K8S_OVERLAYS), so the committed release files keep the local tags."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stackctl import tools
from stackctl.deploy import k8s, k8s_release
from stackctl.serve.native import free_port
from tests.live.dockerlib import ROOT, docker
from tests.live.registry import Registry, running_registry

VERSION = "0.0.0-live"
NAMESPACE = "team"   # a path under the registry, as REGISTRY=host/team in the README
PUSH_TIMEOUT_S = 3600  # a cold build downloads ~4 GB of wheels; cached, the whole push takes minutes


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, images: dict[str, str]) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


def copy_trees(dest: Path) -> Path:
    for tree in k8s.KUSTOMIZE_TREES:
        shutil.copytree(ROOT / tree, dest / tree, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest / "k8s" / "overlays"


def make_push(registry: str, overlays: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "K8S_OVERLAYS": str(overlays)}
    return subprocess.run(["make", "--no-print-directory", "push", f"REGISTRY={registry}", f"VERSION={VERSION}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=PUSH_TIMEOUT_S, check=False)


def kustomize(directory: Path) -> list[dict]:
    out = subprocess.run([tools.find("kubectl", "make venv"), "kustomize", str(directory)], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def pod_images(docs: list[dict]) -> dict[str, str]:
    return {c["name"]: c["image"] for d in docs if d["kind"] in ("Deployment", "Job")
            for c in d["spec"]["template"]["spec"]["containers"]}


@pytest.fixture(scope="module")
def pushed(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, float]]:
    overlays = copy_trees(tmp_path_factory.mktemp("trees"))
    started = time.monotonic()
    result = make_push(f"{registry.host}/{NAMESPACE}", overlays)
    took = time.monotonic() - started
    try:
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        print(f"make push (3 images, gpu included): {took:.0f}s")
        yield overlays, took
    finally:
        for variant in ("gpu", "cpu"):
            docker("rmi", f"{registry.host}/{NAMESPACE}/torchserve-stack/torchserve:{VERSION}-{variant}", check=False)
        docker("rmi", f"{registry.host}/{NAMESPACE}/torchserve-stack/locust:{VERSION}", check=False)


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_documented_path_deploys_the_pushed_digests(registry, pushed, variant) -> None:
    overlays, _ = pushed
    repo = f"{NAMESPACE}/torchserve-stack/torchserve"
    served = registry.digest(repo, f"{VERSION}-{variant}")
    # `kubectl apply -k k8s/overlays/<variant>` as typed in the README (kustomize renders what it applies).
    docs = kustomize(overlays / variant)
    assert pod_images(docs) == {"torchserve": f"{registry.host}/{repo}@{served}"}
    assert {d["metadata"]["labels"][k8s.VERSION_LABEL] for d in docs if d["kind"] != "Namespace"} == {VERSION}
    # The image behind that digest is this variant's (STACK_VARIANT is the one setting they differ by).
    manifest = registry.manifest(repo, served)
    config = json.loads(registry.blob(repo, manifest["config"]["digest"]))
    assert f"STACK_VARIANT={variant}" in config["config"]["Env"]
    assert all(registry.has_blob(repo, layer["digest"]) for layer in manifest["layers"])


def test_the_locust_image_is_recorded_by_digest_too(registry, pushed) -> None:
    overlays, _ = pushed
    doc = yaml.safe_load((overlays / "cpu" / "kustomization.yaml").read_text())
    doc["components"] = ["../../components/loadtest", *doc["components"]]   # as k8s/README.md says
    (overlays / "cpu" / "kustomization.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    served = registry.digest(f"{NAMESPACE}/torchserve-stack/locust", VERSION)
    assert pod_images(kustomize(overlays / "cpu"))["locust"] == \
        f"{registry.host}/{NAMESPACE}/torchserve-stack/locust@{served}"


def test_the_recorded_digests_pull_back(registry, pushed) -> None:
    overlays, _ = pushed
    gpu, cpu = (k8s_release.load(k8s_release.release_file(v, overlays))["images"][0] for v in ("gpu", "cpu"))
    assert gpu["digest"] != cpu["digest"], "the gpu and cpu images must be two different pushes"
    for image in (gpu, cpu):
        ref = f"{image['newName']}@{image['digest']}"
        result = docker("pull", ref, timeout=600, check=False)
        assert result.returncode == 0, result.stderr
        assert ref in docker("image", "inspect", "--format", "{{json .RepoDigests}}", ref).stdout


def test_a_push_that_cannot_reach_its_registry_fails_and_records_nothing(images, tmp_path) -> None:
    overlays = copy_trees(tmp_path)
    before = {v: k8s_release.release_file(v, overlays).read_text() for v in ("gpu", "cpu")}
    nowhere = f"127.0.0.1:{free_port()}/{NAMESPACE}"   # nothing listens there
    try:
        result = make_push(nowhere, overlays)
        assert result.returncode != 0
        assert "FAILED to push" in result.stderr and "not recorded" in result.stderr
        assert {v: k8s_release.release_file(v, overlays).read_text() for v in ("gpu", "cpu")} == before
    finally:
        for tag in (f"torchserve:{VERSION}-gpu", f"torchserve:{VERSION}-cpu", f"locust:{VERSION}"):
            docker("rmi", f"{nowhere}/torchserve-stack/{tag}", check=False)
