"""Models apart from the image, live: `make push-models` pushes every archive of model_store/ as an
OCI artifact to a real registry (Debian's docker-registry on loopback); the serving image, run as
components/model-oci's init container runs it (same command, uid 10001, read-only root, no
capabilities), pulls exactly the recorded digests into a store; the server, with that store
mounted read-only over /app/model_store, serves every model; and an image built from a context
without archives holds none.

The same pull as KServe's storage initializer (k8s/kserve's ClusterStorageContainer, `fetch`) too.
The pod itself, init container first, through `make k8s-pod`'s runner: test_k8s_pod_models.py.
The init container here uses the host's network to reach the loopback registry, where a pod
would use its own (with the component's egress policy)."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stackctl import paths
from stackctl.catalog.specs import load_specs
from stackctl.deploy import k8s_kserve, model_oci
from stackctl.pod.pod_requests import predict
from tests.live.dockerlib import ROOT, docker, unique, wait_healthy
from tests.live.registry import Registry, running_registry

SERVER_UID = "10001"
SANDBOX = ["--read-only", "--user", f"{SERVER_UID}:{SERVER_UID}", "--cap-drop", "ALL",
           "--security-opt", "no-new-privileges:true"]
# What components/model-oci/deployment-patch.yaml runs, with the paths it mounts.
PULL = ["python", "-m", "stackctl.deploy.model_oci", "pull", "--refs", "/etc/torchserve-models/models.txt", "--dest", "/models"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, images: dict[str, str]) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def pushed(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    refs = tmp_path_factory.mktemp("refs") / "models.txt"
    result = subprocess.run(["make", "--no-print-directory", "push-models", f"REGISTRY={registry.host}/team",
                             "PLAIN_HTTP=1", f"MODEL_REFS={refs}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=1800, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return refs, model_oci.read_refs(refs)


def test_every_archive_is_pushed_by_digest(registry, pushed) -> None:
    _, refs = pushed
    archives = sorted(paths.MODEL_STORE.glob("*.mar"))
    assert len(refs) == len(archives) >= 2
    for ref, mar in zip(refs, archives, strict=True):
        repo, digest = ref.removeprefix(f"{registry.host}/").split("@")
        assert registry.digest(repo, digest) == digest
        (layer,) = registry.manifest(repo, digest)["layers"]
        assert layer["mediaType"] == model_oci.MEDIA_TYPE
        assert layer["annotations"][model_oci.TITLE] == mar.name
        assert layer["digest"] == f"sha256:{sha256(mar)}"


@pytest.fixture(scope="module")
def pulled_store(pushed, images, tmp_path_factory: pytest.TempPathFactory) -> Path:
    refs, _ = pushed
    store = tmp_path_factory.mktemp("store")
    shutil.chown(store, int(SERVER_UID), int(SERVER_UID))
    result = docker("run", "--rm", "--network", "host", *SANDBOX, "--tmpfs", "/tmp:rw,mode=1777",
                    "-e", "HOME=/tmp", "-e", "MODEL_REGISTRY_PLAIN_HTTP=1",
                    "-v", f"{refs}:/etc/torchserve-models/models.txt:ro", "-v", f"{store}:/models",
                    "--entrypoint", PULL[0], images["torchserve"], *PULL[1:], timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return store


def test_the_init_container_pulls_exactly_the_pushed_bytes(pulled_store) -> None:
    archives = {p.name: sha256(p) for p in paths.MODEL_STORE.glob("*.mar")}
    assert {p.name: sha256(p) for p in pulled_store.glob("*.mar")} == archives
    assert not [p for p in pulled_store.iterdir() if p.name.startswith(".pull-")], "no partial downloads left"


def test_the_server_serves_every_model_from_the_read_only_pulled_store(pulled_store, images) -> None:
    name = unique("tsl-model-oci")
    try:
        docker("run", "-d", "--name", name, "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
               "-p", "127.0.0.1::8080", "-v", f"{pulled_store}:/app/model_store:ro", images["torchserve"])
        wait_healthy(name)
        port = int(docker("port", name, "8080").stdout.split(":")[-1])
        statuses = {spec.name: predict(port, spec) for spec in load_specs() if spec.is_default}
        assert set(statuses.values()) == {200}, statuses
        # The store is read-only to the server.
        probe = docker("exec", name, "touch", "/app/model_store/x", check=False)
        assert probe.returncode != 0
    finally:
        docker("rm", "-f", "-v", name, check=False)


def test_a_digest_the_registry_does_not_hold_fails_the_pull(pushed, images, tmp_path) -> None:
    refs, good = pushed
    wrong = tmp_path / "models.txt"
    wrong.write_text(good[0].split("@")[0] + "@sha256:" + "0" * 64 + "\n")
    store = tmp_path / "store"
    store.mkdir()
    shutil.chown(store, int(SERVER_UID), int(SERVER_UID))
    result = docker("run", "--rm", "--network", "host", *SANDBOX, "--tmpfs", "/tmp:rw,mode=1777",
                    "-e", "HOME=/tmp", "-e", "MODEL_REGISTRY_PLAIN_HTTP=1",
                    "-v", f"{wrong}:/etc/torchserve-models/models.txt:ro", "-v", f"{store}:/models",
                    "--entrypoint", PULL[0], images["torchserve"], *PULL[1:], timeout=300, check=False)
    assert result.returncode != 0
    # One clear last line naming the digest (oras-py logs the registry's own message before it).
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "sha256:" + "0" * 64 in last and "Not Found" in last, result.stderr
    assert not list(store.glob("*.mar"))


def _allowed_top_level() -> set[str]:
    """The top-level names .dockerignore lets in, so this copy follows the allow-list (it once
    missed requirements.lock when the lock was added) instead of repeating it."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    names = {line[1:].split("/")[0] for line in lines if line.startswith("!")}
    return names - {"model_store"}


def test_the_image_builds_without_models(images, tmp_path) -> None:
    """A build context whose model_store/ holds no archive still builds (every layer before the
    archives comes from the cache) and the image holds none."""
    for item in sorted({".dockerignore", "docker", *_allowed_top_level()}):
        source = ROOT / item
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, tmp_path / item)
    (tmp_path / "model_store").mkdir()
    (tmp_path / "model_store" / ".gitkeep").touch()
    tag = f"torchserve-stack/torchserve:{unique('no-models')}"
    try:
        result = subprocess.run(["docker", "build", "-q", "-f", "docker/Dockerfile", "--target", "runtime",
                                 "--build-arg", "VARIANT=cpu", "-t", tag, "."], cwd=tmp_path, capture_output=True,
                                text=True, timeout=1800, check=False, env={"DOCKER_BUILDKIT": "1", "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stderr[-3000:]
        listing = docker("run", "--rm", "--entrypoint", "ls", tag, "-A", "/app/model_store").stdout.split()
        assert listing == [".gitkeep"]
    finally:
        docker("rmi", tag, check=False)


def test_the_kserve_storage_container_fetches_exactly_the_pushed_bytes(pushed, images, tmp_path) -> None:
    """k8s/kserve's ClusterStorageContainer as KServe runs it: its container (command, env,
    sandbox, and no /tmp: KServe mounts nothing else into it) with the URI/folder pairs KServe
    appends, the volume at the InferenceService's mountPath."""
    _, good = pushed
    (storage,) = [d for d in yaml.safe_load_all((k8s_kserve.KSERVE_DIR / "clusterStorageContainer.yaml").read_text()) if d]
    container = storage["spec"]["container"]
    mount = k8s_kserve.MODEL_STORE
    store = tmp_path / "store"
    store.mkdir()
    shutil.chown(store, int(SERVER_UID), int(SERVER_UID))
    env = [arg for e in container["env"] for arg in ("-e", f"{e['name']}={e['value']}")]
    pairs = [arg for ref in good for arg in (model_oci.URI_SCHEME + ref, mount)]
    result = docker("run", "--rm", "--network", "host", *SANDBOX, *env, "-e", "MODEL_REGISTRY_PLAIN_HTTP=1",
                    "-v", f"{store}:{mount}", "--entrypoint", container["command"][0], images["torchserve"],
                    *container["command"][1:], *pairs, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    archives = {p.name: sha256(p) for p in paths.MODEL_STORE.glob("*.mar")}
    assert {p.name: sha256(p) for p in store.glob("*.mar")} == archives
    assert sorted(p.name for p in store.iterdir()) == sorted(archives), "nothing but the archives left"
