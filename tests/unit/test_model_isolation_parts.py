"""The pieces behind "one model's failure harms no other" and "no silent CPU fallback" that run
without a server: the ready marker's place, the load order that names default versions, and the
one-line CUDA refusal (run for real on this CPU host). The served behaviour is tested in
tests/integration/test_model_isolation.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from handlers import device_check
from stackctl import paths
from stackctl.catalog import versions
from stackctl.serve import readiness


def _archive(store: Path, stem: str, version: str) -> None:
    with zipfile.ZipFile(store / f"{stem}.mar", "w") as z:
        z.writestr("MAR-INF/MANIFEST.json", json.dumps({"model": {"modelVersion": version}}))


def test_the_marker_is_per_management_port_and_can_be_named(tmp_path: Path) -> None:
    env = {"TMPDIR": str(tmp_path)}
    assert readiness.ready_marker("http://127.0.0.1:9081", env) == tmp_path / "stackctl-ready-9081.json"
    assert readiness.ready_marker("http://127.0.0.1:9081", {readiness.MARKER_ENV: "/x/m"}) == Path("/x/m")
    marker = readiness.ready_marker("http://127.0.0.1:9081", env)
    marker.write_text("{}")
    readiness.clear_marker("http://127.0.0.1:9081", env)
    assert not marker.exists()
    readiness.clear_marker("http://127.0.0.1:9081", env)   # nothing there: fine


def test_a_server_that_never_answered_is_not_ready_even_with_a_marker(tmp_path: Path) -> None:
    marker = tmp_path / "m.json"
    marker.write_text(json.dumps({"models": ["digits"]}))
    with pytest.raises(readiness.NotReady, match="not answering"):
        readiness.probe("http://127.0.0.1:9", marker=marker, timeout=0.5)
    marker.unlink()
    with pytest.raises(readiness.NotReady, match="not answering"):
        readiness.probe("http://127.0.0.1:9", marker=marker, timeout=0.5)
    assert not marker.exists(), "written only when every model was READY"


def test_defaults_load_first_so_torchserve_registers_them_as_the_default(tmp_path: Path) -> None:
    for stem, version in (("b@2.0", "2.0"), ("a", "1.0"), ("b", "1.0"), ("a@0.9", "0.9"), ("c", "3")):
        _archive(tmp_path, stem, version)
    assert versions.load_order(tmp_path) == ["a.mar", "b.mar", "c.mar", "a@0.9.mar", "b@2.0.mar"]
    command = ["torchserve", "--model-store", str(tmp_path), "--models", "all", "--ncs"]
    assert versions.ordered_models(command) == ["torchserve", "--model-store", str(tmp_path), "--models",
                                                "a.mar", "b.mar", "c.mar", "a@0.9.mar", "b@2.0.mar", "--ncs"]
    named = ["torchserve", "--model-store", str(tmp_path), "--models", "b.mar"]
    assert versions.ordered_models(named) == named, "an explicit list is the user's"


def test_one_version_each_keeps_models_all(tmp_path: Path) -> None:
    _archive(tmp_path, "a", "1.0")
    command = ["torchserve", "--model-store", str(tmp_path), "--models", "all"]
    assert versions.ordered_models(command) == command


@pytest.mark.parametrize("cuda, floor", [("13.0", "driver >= 580.65.06"), ("13.1", "driver >= 580.65.06"),
                                         ("12.8", "driver >= 570.26"), (None, "none: this torch is a CPU-only build")])
def test_driver_floor(cuda: str | None, floor: str) -> None:
    assert device_check.driver_floor(cuda).startswith(floor)


def test_the_driver_found_is_read_from_the_kernel_module(tmp_path: Path) -> None:
    version = tmp_path / "version"
    version.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  575.57.08  Release Build\nGCC\n")
    assert device_check.found_driver(version) == "NVIDIA driver 575.57.08"
    assert device_check.found_driver(tmp_path / "absent").startswith("no NVIDIA driver loaded")


@pytest.mark.parametrize("module", ["stackctl.serve.gpu_check", "stackctl.serve.container"])
def test_a_gpu_deployment_without_cuda_refuses_to_start_with_one_line(module: str) -> None:
    """This host has no GPU: with STACK_REQUIRE_CUDA=1 the check, and the image's entry point
    before it starts anything, exit 1 with one line naming the floor and what was found."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has a usable CUDA device")
    args = [sys.executable, "-m", module] + (["sleep", "60"] if module.endswith("container") else [])
    done = subprocess.run(args, cwd=paths.ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, device_check.REQUIRE_ENV: "1"})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith("STACK_REQUIRE_CUDA=1 but CUDA is not usable: torch ")
    assert f"needs {device_check.driver_floor(torch.version.cuda)}" in lines[0] and "found " in lines[0]
    assert lines[0].endswith("Refusing to serve on the CPU.")


def test_without_the_variable_there_is_no_check() -> None:
    assert device_check.check({}) is None
    assert device_check.check({device_check.REQUIRE_ENV: "0"}) is None


def test_a_worker_refuses_the_cpu_when_cuda_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler's own check (a worker started some other way than the entry point)."""
    import torch

    from handlers.runtime import select_device

    if torch.cuda.is_available():
        pytest.skip("this host has a usable CUDA device")
    assert select_device({"gpu_id": 0}) == torch.device("cpu"), "without the variable: the CPU, as before"
    monkeypatch.setenv(device_check.REQUIRE_ENV, "1")
    with pytest.raises(RuntimeError, match="STACK_REQUIRE_CUDA=1 but CUDA is not usable"):
        select_device({"gpu_id": 0})
