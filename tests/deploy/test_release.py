"""The release component of each overlay (stackctl/deploy/k8s_release.py): what `make push` records there
is what `kubectl kustomize k8s/overlays/<overlay>`, the documented path, renders. No engine and no
registry: the digests here are made up; tests/live/test_registry_push.py pushes real ones."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from stackctl import paths, tools
from stackctl.deploy import k8s, k8s_release

ROOT = paths.ROOT
REGISTRY = "reg.example:5000/team"


def fake_digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def copy_trees(tmp_path: Path) -> Path:
    for tree in k8s.KUSTOMIZE_TREES:
        shutil.copytree(ROOT / tree, tmp_path / tree, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tmp_path / "k8s" / "overlays"


def kustomize(directory: Path) -> list[dict]:
    kubectl = tools.find("kubectl", "`make venv` installs it")
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def images(docs: list[dict]) -> set[str]:
    return {c["image"] for d in docs if d["kind"] in ("Deployment", "Job")
            for c in d["spec"]["template"]["spec"].get("initContainers", []) + d["spec"]["template"]["spec"]["containers"]}


def add_component(overlays: Path, overlay: str, name: str) -> None:
    """What k8s/README.md tells a user to do: list a component above `release`."""
    path = overlays / overlay / "kustomization.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["components"] = [f"../../components/{name}", *doc["components"]]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_release_is_listed_last_by_every_overlay(overlay):
    doc = yaml.safe_load((ROOT / "k8s" / "overlays" / overlay / "kustomization.yaml").read_text())
    assert doc["components"][-1] == k8s_release.RELEASE
    assert "images" not in doc, "the overlay's images live in release/, where `make push` records them"


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_recorded_digests_are_what_the_plain_overlay_deploys(tmp_path, overlay):
    overlays = copy_trees(tmp_path)
    pushed = {"torchserve-stack/torchserve": f"{REGISTRY}/torchserve-stack/torchserve@{fake_digest(overlay)}",
              "torchserve-stack/locust": f"{REGISTRY}/torchserve-stack/locust@{fake_digest('locust')}"}
    k8s_release.record(overlay, "1.2.3", pushed, overlays)
    docs = kustomize(overlays / overlay)
    assert images(docs) == {pushed["torchserve-stack/torchserve"]}
    assert {d["metadata"]["labels"][k8s.VERSION_LABEL] for d in docs if d["kind"] != "Namespace"} == {"1.2.3"}
    # A component the user lists reaches the Locust image too, by digest.
    add_component(overlays, overlay, "loadtest")
    assert images(kustomize(overlays / overlay)) == set(pushed.values())


def test_a_release_without_every_digest_records_nothing(tmp_path):
    overlays = copy_trees(tmp_path)
    before = k8s_release.release_file("gpu", overlays).read_text()
    only_one = {"torchserve-stack/torchserve": f"{REGISTRY}/torchserve-stack/torchserve@{fake_digest('x')}"}
    with pytest.raises(k8s_release.ReleaseError, match="no pushed digest for torchserve-stack/locust"):
        k8s_release.record("gpu", "1.2.3", only_one, overlays)
    by_tag = {**only_one, "torchserve-stack/locust": f"{REGISTRY}/torchserve-stack/locust:1.2.3"}
    with pytest.raises(k8s_release.ReleaseError, match="not a reference by digest"):
        k8s_release.record("gpu", "1.2.3", by_tag, overlays)
    assert k8s_release.release_file("gpu", overlays).read_text() == before


def test_record_cli_writes_what_push_sh_passes(tmp_path):
    overlays = copy_trees(tmp_path)
    ref = f"{REGISTRY}/torchserve-stack/torchserve@{fake_digest('cli')}"
    locust = f"{REGISTRY}/torchserve-stack/locust@{fake_digest('cli-locust')}"
    assert k8s_release.main(["record", "--overlays", str(overlays), "--overlay", "cpu", "--version", "9.9.9",
                             "--image", f"torchserve-stack/torchserve={ref}",
                             "--image", f"torchserve-stack/locust={locust}"]) == 0
    assert images(kustomize(overlays / "cpu")) == {ref}
    assert k8s_release.main(["record", "--overlays", str(overlays), "--overlay", "cpu", "--version", "9.9.9",
                             "--image", f"torchserve-stack/torchserve={ref}"]) == 2


def test_push_script_builds_every_variant_whatever_the_host():
    """The gpu image is built on any host (no `docker info` runtime check decides the variant),
    and a missing variant fails the push instead of being skipped."""
    script = (ROOT / "docker" / "push.sh").read_text()
    for target in ("gpu", "cpu", "loadtest"):
        assert f'"{target} torchserve-stack/' in script
    assert "docker info" not in script and "skipped" not in script
    assert "stackctl.deploy.k8s_release record" in script
