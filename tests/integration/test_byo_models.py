"""Brought models served for real: digits, langid, a torchvision resnet18 state_dict and a
torch.export program, archived by `python -m stackctl models` from specs and data outside the
repository (tests/byo_models.py) into their own store, served together by one TorchServe on free
loopback ports, with a second version of the .pt2 model beside the first."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from stackctl import paths
from stackctl.catalog import versions
from stackctl.serve import readiness
from stackctl.serve.native import NativeStack, Ports, torchserve_command
from tests.byo_models import ByoModels, write_byo_models, write_second_version

DIGIT = (paths.ROOT / "tests" / "data" / "digit-7.png").read_bytes()


@dataclass
class Served:
    models: ByoModels
    stack: NativeStack
    second_labels: list[str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    models = write_byo_models(tmp_path_factory.mktemp("byo"))
    second = write_second_version(models)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "stackctl", "models"], cwd=paths.ROOT,
                            env={**os.environ, **models.env()}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"archived in {time.monotonic() - started:.1f} s")
    stack = NativeStack(run_dir=tmp_path_factory.mktemp("byo-run"), ports=Ports.free(), model_store=models.model_store)
    try:
        proc = stack.start_torchserve()
        started = time.monotonic()
        stack.wait_for_torchserve(proc, timeout=300)
        print(f"ready in {time.monotonic() - started:.1f} s")
        yield Served(models, stack, second)
    finally:
        stack.stop_all()


def _predict(served: Served, route: str, **kwargs) -> list[dict]:
    response = requests.post(f"{served.stack.inference_url}/predictions/{route}", timeout=60, **kwargs)
    assert response.status_code == 200, f"{route}: {response.status_code} {response.text}"
    assert response.json()["model"] == route.split("/")[0]
    return response.json()["top_k"]


def test_the_store_holds_exactly_the_specs_archives(served: Served) -> None:
    names = sorted(p.name for p in served.models.model_store.iterdir() if not p.name.startswith("."))
    built_in = [f"{spec.stem}.mar" for spec in (paths.ROOT / "config" / "models").glob("*.yaml")]
    assert names == sorted([*built_in, "resnet18.mar", "shapes.mar", "shapes@2.0.mar"])


@pytest.mark.parametrize("name", ["resnet18", "shapes"])
def test_a_brought_model_answers_with_its_labels_and_top_k(served: Served, name: str) -> None:
    top = _predict(served, name, data=DIGIT, headers={"Content-Type": "image/png"})
    assert len(top) == served.models.top_k[name]
    assert {item["label"] for item in top} <= set(served.models.labels[name])


def test_the_trained_models_answer_beside_them(served: Served) -> None:
    digits = _predict(served, "digits", data=DIGIT, headers={"Content-Type": "image/png"})
    assert len(digits) == 3 and digits[0]["label"] == "7"
    langid = _predict(served, "langid", json={"text": "dove si trova la stazione"})
    assert len(langid) == 3 and langid[0]["label"] == "italian"


def test_two_versions_answer_on_their_own_urls_and_the_default_on_the_plain_one(served: Served) -> None:
    post = {"data": DIGIT, "headers": {"Content-Type": "image/png"}}
    first = {i["label"] for i in _predict(served, "shapes/1.0", **post)}
    second = {i["label"] for i in _predict(served, "shapes/2.0", **post)}
    assert first <= set(served.models.labels["shapes"]) and second <= set(served.second_labels)
    assert {i["label"] for i in _predict(served, "shapes", **post)} <= set(served.models.labels["shapes"])


def test_the_default_comes_from_the_store_not_the_registration_order(served: Served) -> None:
    """TorchServe's own default is whichever archive it listed first; switch it away (the
    rollout's `stackctl set-default`), and naming the defaults again puts shapes.mar's version
    back on the plain URL."""
    management, post = served.stack.management_url, {"data": DIGIT, "headers": {"Content-Type": "image/png"}}
    switched = subprocess.run([sys.executable, "-m", "stackctl", "set-default", "shapes", "2.0", "--management", management],
                              cwd=paths.ROOT, capture_output=True, text=True, timeout=60)
    assert switched.returncode == 0, switched.stderr
    assert {i["label"] for i in _predict(served, "shapes", **post)} <= set(served.second_labels)
    assert versions.apply_default_versions(management, served.models.model_store) == {"shapes": "1.0"}
    assert {i["label"] for i in _predict(served, "shapes", **post)} <= set(served.models.labels["shapes"])


def test_the_image_entry_point_names_the_default_too(served: Served, tmp_path: Path) -> None:
    """Compose and Kubernetes run stackctl.serve.container, not NativeStack: it names the defaults
    itself once the server is ready (and says so in its log)."""
    stack = NativeStack(run_dir=tmp_path, ports=Ports.free(), model_store=served.models.model_store)
    command = [sys.executable, "-m", "stackctl.serve.container", *torchserve_command(served.models.model_store)]
    try:
        proc = stack.start_torchserve(command=command)
        readiness.wait_until_ready(stack.management_url, {"shapes"}, 300, readiness.process_alive(proc))
        log, deadline = tmp_path / "torchserve.out", time.monotonic() + 60
        while "default versions: shapes 1.0" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        response = requests.post(f"{stack.inference_url}/predictions/shapes", data=DIGIT,
                                 headers={"Content-Type": "image/png"}, timeout=60)
        assert {i["label"] for i in response.json()["top_k"]} <= set(served.models.labels["shapes"])
    finally:
        stack.stop_all()
