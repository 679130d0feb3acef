"""The bench's workloads follow the spec folder: every served spec plus the bench-only ones."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench import workloads
from stackctl import paths


@pytest.fixture
def spec_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """config/models/ copied, plus a user's torchvision spec; the bench reads it through paths.SPECS
    (what STACK_SPECS_DIR sets)."""
    folder = tmp_path / "models"
    shutil.copytree(paths.CONFIG / "models", folder)
    own = yaml.safe_load((workloads.MOBILENET_SPEC).read_text())
    own.update(name="own_resnet", description="a user's resnet18", model={
        **own["model"], "architecture": "torchvision:resnet18", "weights": "w.pt", "labels": "l.json"})
    (folder / "own_resnet.yaml").write_text(yaml.safe_dump(own))
    monkeypatch.setattr(paths, "SPECS", folder)
    monkeypatch.setattr(paths, "MODEL_STORE", tmp_path / "model_store")
    return folder


def test_every_spec_is_a_workload_and_bench_only_specs_come_last(spec_dir: Path) -> None:
    found = {w.name: w for w in workloads.workloads()}
    assert list(found) == ["digits", "langid", "own_resnet", "mobilenet"]
    assert {n: w.kind for n, w in found.items()} == {
        "digits": "overhead", "langid": "overhead", "own_resnet": "compute", "mobilenet": "compute"}
    assert [n for n, w in found.items() if w.bench_only] == ["mobilenet"]
    assert found["own_resnet"].archive == spec_dir.parent / "model_store" / "own_resnet.mar"
    assert found["mobilenet"].archive == workloads.BENCH_STORE / "mobilenet.mar"
    assert found["own_resnet"].note == "a user's resnet18"
    assert [w.name for w in workloads.workloads(served_only=True)] == ["digits", "langid", "own_resnet"]
    assert [w.name for w in workloads.workloads(["mobilenet", "own_resnet"])] == ["mobilenet", "own_resnet"]
    with pytest.raises(ValueError, match="unknown workloads"):
        workloads.workloads(["nope"])


def test_a_served_model_may_not_take_a_bench_only_name(spec_dir: Path) -> None:
    shutil.copy(workloads.MOBILENET_SPEC, spec_dir / "mobilenet.yaml")
    with pytest.raises(ValueError, match="bench-only model 'mobilenet' has the name of a served model"):
        workloads.all_workloads()


def test_the_command_line_offers_the_models_of_the_spec_folder_it_is_given(spec_dir: Path) -> None:
    # A subprocess: STACK_SPECS_DIR is read at import, and bench.run imports Locust (gevent
    # monkey-patching), which must not leak into the unit-test process.
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--workloads", "nope"], cwd=paths.ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "STACK_SPECS_DIR": str(spec_dir)})
    assert proc.returncode == 2
    assert "choose from 'digits', 'langid', 'own_resnet', 'mobilenet'" in proc.stderr
    with pytest.raises(FileNotFoundError, match="own_resnet.mar is missing: run `make models`"):
        workloads.ensure_archives(workloads.workloads(["own_resnet"]))
