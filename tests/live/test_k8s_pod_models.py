"""`make k8s-pod` with components/model-oci, live: the archives travel apart from the image.

A real registry (Debian's docker-registry on a free loopback port, tests/live/registry.py) gets
every archive of model_store/ from `make push-models`' function (stackctl.deploy.model_oci.push); the
cpu overlay is rendered with the model-oci component listing exactly those digests; the pod runner
(stackctl.pod.podrun) runs the component's init container `pull-models` to completion first (the
serving image, uid 10001, read-only root, no capabilities; on the host's network, to reach the
loopback registry: k8s/README.md), then the server with the pulled store mounted read-only over
/app/model_store, and the pod lives its whole life: probes, every model answering 200 with the
right labels, the drain on termination. Containers and volumes are always removed.
"""
from __future__ import annotations

import hashlib
import os
import random
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from models.langid import held_out_texts
from stackctl import paths
from stackctl.catalog.specs import load_specs
from stackctl.deploy import model_oci
from stackctl.pod import docker_cli, pod_translate, podrun
from stackctl.pod.pod_container import Pod
from tests.imagegen import digit_image, encode, held_out
from tests.live.registry import Registry, running_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, images: dict[str, str]) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


def leftovers() -> list[str]:
    """This process's pod containers and volumes still on the engine."""
    name = f"podrun-cpu-{os.getpid()}"
    containers = docker_cli.docker("ps", "--all", "--quiet", "--filter", f"label={pod_translate.LABEL}=1",
                                   "--filter", f"name={name}", check=False).stdout.split()
    volumes = docker_cli.docker("volume", "ls", "--quiet", "--filter", f"label={pod_translate.LABEL}=1",
                                "--filter", f"name={name}", check=False).stdout.split()
    return containers + volumes


def labels_are_right(port: int) -> dict[str, str]:
    """Held-out digits and sentences through the pod's inference port: 200 from the right model,
    and the accuracy tests/integration/test_serving.py asks of the same models."""
    url = f"http://127.0.0.1:{port}/predictions"
    digits = [(encode(digit_image(img, 28, "L", dark_on_light=True), "PNG"), label) for img, label in held_out(50, seed=5)]
    texts = random.Random(5).sample(held_out_texts(), 70)
    with ThreadPoolExecutor(4) as pool:
        d = list(pool.map(lambda c: requests.post(f"{url}/digits", data=c[0], timeout=60,
                                                  headers={"Content-Type": "image/png"}), digits))
        t = list(pool.map(lambda s: requests.post(f"{url}/langid", json={"text": s[0]}, timeout=60), texts))
    assert all(r.status_code == 200 for r in d + t), [r.text for r in d + t if r.status_code != 200][:3]
    assert {r.json()["model"] for r in d} == {"digits"} and {r.json()["model"] for r in t} == {"langid"}
    right_digits = sum(r.json()["top_k"][0]["label"] == str(label) for r, (_, label) in zip(d, digits, strict=True))
    right_texts = sum(r.json()["top_k"][0]["label"] == lang for r, (_, lang) in zip(t, texts, strict=True))
    assert right_digits / len(digits) >= 0.9, f"digits {right_digits}/{len(digits)}"
    assert right_texts / len(texts) >= 0.7, f"langid {right_texts}/{len(texts)}"
    return {"digits": f"{right_digits}/{len(digits)}", "langid": f"{right_texts}/{len(texts)}"}


def test_model_oci_pod_pulls_the_pushed_digests_then_serves_every_model(registry, images, tmp_path: Path) -> None:
    refs = model_oci.push(f"{registry.host}/team", paths.MODEL_STORE, plain_http=True)
    refs_file = tmp_path / "models.txt"
    refs_file.write_text("\n".join(refs) + "\n")
    pushed = {mar.name: hashlib.sha256(mar.read_bytes()).hexdigest() for mar in paths.MODEL_STORE.glob("*.mar")}
    seen: dict[str, object] = {}

    def inside(pod: Pod) -> None:
        mounts = pod.exec("cat", "/proc/mounts").stdout.splitlines()
        seen["store mount"] = next(m for m in mounts if m.split()[1] == "/app/model_store")
        sums = pod.exec("sh", "-c", "cd /app/model_store && sha256sum *.mar").stdout.split("\n")
        seen["store"] = {line.split()[1]: line.split()[0] for line in sums if line.strip()}
        seen["store writable"] = pod.exec("touch", "/app/model_store/x").returncode == 0
        seen["accuracy"] = labels_are_right(pod.plan.host_ports["inference"])
        print(f"inside the pod: {seen}", flush=True)

    try:
        report = podrun.run("cpu", image=images["torchserve"], log=sys.stdout, components=("model-oci",),
                            model_refs=refs_file, extra_env={"MODEL_REGISTRY_PLAIN_HTTP": "1"}, serve_check=inside)
    finally:
        assert not leftovers(), "the pod's containers or volumes were not removed"
    assert list(report.init_s) == ["pull-models"]
    # The server saw exactly the pushed bytes, on the shared tmpfs volume, read-only to it (the
    # image's own archives are hidden under it).
    assert seen["store"] == pushed and len(pushed) >= 2
    mount = str(seen["store mount"]).split()
    assert mount[2] == "tmpfs" and "ro" in mount[3].split(",") and seen["store writable"] is False
    assert report.answers == {s.name: 200 for s in load_specs()}
    assert report.started_s is not None and report.ready_s is not None and report.live_s is not None
    assert report.drain["in_flight_when_termination_began"] > 0 and not report.drain["not_200"]


def test_a_digest_the_registry_lacks_stops_the_pod_before_the_server(registry, images, tmp_path: Path) -> None:
    """Init:Error: the pull fails with its one line, and the server container is never created."""
    refs = model_oci.push(f"{registry.host}/team", paths.MODEL_STORE, plain_http=True)
    wrong = tmp_path / "models.txt"
    wrong.write_text(refs[0].split("@")[0] + "@sha256:" + "0" * 64 + "\n")
    try:
        with pytest.raises(podrun.PodRunError, match="init container pull-models exited") as failed:
            podrun.run("cpu", image=images["torchserve"], components=("model-oci",), model_refs=wrong,
                       extra_env={"MODEL_REGISTRY_PLAIN_HTTP": "1"})
    finally:
        assert not leftovers(), "the pod's containers or volumes were not removed"
    assert "sha256:" + "0" * 64 in str(failed.value) and "Not Found" in str(failed.value)
