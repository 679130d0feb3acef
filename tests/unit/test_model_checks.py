"""What `make models` checks after the schema: the files a spec names, the labels, and one forward
pass of the real model. Each failure is one line naming the spec file and the key, and leaves
the model store as it was."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from handlers.labels import parse_labels
from stackctl import paths
from stackctl.catalog import model_check
from stackctl.catalog.specs import SpecError, load_spec
from tests import byo_models
from tests.byo_models import ByoModels, write_byo_models, write_spec


@pytest.fixture(scope="module")
def byo(tmp_path_factory: pytest.TempPathFactory) -> ByoModels:
    return write_byo_models(tmp_path_factory.mktemp("byo"))


@pytest.fixture()
def model_data(byo: ByoModels, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODEL_DATA", str(byo.data_dir))
    return byo.data_dir


def _spec_file(tmp_path: Path, doc: dict) -> Path:
    return write_spec(tmp_path, doc)


def _failure(path: Path) -> str:
    with pytest.raises(SpecError) as raised:
        model_check.check(load_spec(path))
    message = str(raised.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("text", ['["a", "b", "c"]', '{"0": "a", "1": "b", "2": "c"}', "a\nb\n\nc\n"],
                         ids=["json-list", "json-mapping", "text-lines"])
def test_three_label_forms_read_the_same(text: str) -> None:
    assert parse_labels(text) == ["a", "b", "c"]


@pytest.mark.parametrize(("text", "says"), [('{"0": "a", "2": "c"}', '"1" is missing'), ("a\na\n", "labels repeat"),
                                            ("[1, 2]", "non-empty string"), ("\n", "no labels")])
def test_bad_label_files_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_labels(text)


def test_the_brought_models_pass(byo: ByoModels, model_data: Path) -> None:
    for name in byo.names:
        model_check.check(load_spec(byo.spec_dir / f"{name}.yaml"))


@pytest.mark.parametrize(("key", "value", "named"), [
    ("weights", "resnet18/missing.pt", "model.weights"),
    ("labels", "resnet18/missing.txt", "model.labels"),
    ("extra_files", ["resnet18/missing.json"], r"model.extra_files\[0\]"),
])
def test_a_missing_file_names_its_key(tmp_path: Path, model_data: Path, key: str, value: object, named: str) -> None:
    doc = byo_models.resnet18_spec()
    doc["model"][key] = value
    path = _spec_file(tmp_path, doc)
    message = _failure(path)
    assert message.startswith(f"{path}: ") and "does not exist" in message and "MODEL_DATA" in message
    assert re.search(f": {named}: file ", message), message


@pytest.mark.parametrize(("spec", "labels", "says"), [
    (byo_models.resnet18_spec, "a\nb\nc\nd\n",
     "model.labels: 4 labels, but model.weights do not load into torchvision:resnet18 with 4 classes: "
     "size mismatch for fc.weight"),
    (byo_models.pt2_spec, '["a", "b", "c"]',
     "model.labels: 3 labels, but the model's output is (2, 4) for a batch of 2 (expected (2, 3))"),
], ids=["torchvision-state-dict", "pt2"])
def test_a_label_count_unlike_the_model_output_names_labels(tmp_path: Path, model_data: Path, spec, labels: str,
                                                            says: str) -> None:
    (tmp_path / "labels.txt").write_text(labels)
    doc = spec()
    doc["model"]["labels"] = str(tmp_path / "labels.txt")
    path = _spec_file(tmp_path, doc)
    assert _failure(path).startswith(f"{path}: {says}")


def test_a_pt2_with_a_static_batch_dimension_names_weights(tmp_path: Path, model_data: Path) -> None:
    byo_models.export_tiny_cnn(model_data / "static.pt2", dynamic_batch=False)
    doc = byo_models.pt2_spec()
    doc["model"]["weights"] = "static.pt2"
    path = _spec_file(tmp_path, doc)
    message = _failure(path)
    assert message.startswith(f"{path}: model.weights: the batch dimension of static.pt2 is static (2)")
    assert "torch.export.Dim" in message


def test_input_size_the_model_cannot_take_names_handler(tmp_path: Path, model_data: Path) -> None:
    doc = byo_models.pt2_spec()
    doc["handler"]["image"]["color_mode"] = "L"    # the exported CNN takes 3 channels
    path = _spec_file(tmp_path, doc)
    assert _failure(path).startswith(f"{path}: handler: the model fails on a dummy batch of inputs (2, 1, 32, 32)")


def test_make_models_fails_in_one_line_and_writes_nothing(byo: ByoModels, tmp_path: Path) -> None:
    """Every spec is checked before the first archive is written: the good models beside a bad
    one are not archived either, and no partial file is left in the store."""
    specs = tmp_path / "specs"
    specs.mkdir()
    for name in byo.names:
        (specs / f"{name}.yaml").write_text((byo.spec_dir / f"{name}.yaml").read_text())
    bad = yaml.safe_load((specs / "shapes.yaml").read_text())
    bad["model"]["labels"] = "resnet18/labels.txt"     # 5 labels for 4 outputs
    (specs / "shapes.yaml").write_text(yaml.safe_dump(bad))
    store = tmp_path / "model_store"
    env = {**os.environ, **byo.env(), "STACK_SPECS_DIR": str(specs), "STACK_MODEL_STORE": str(store)}
    result = subprocess.run([sys.executable, "-m", "stackctl", "models"], cwd=paths.ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("make models:")]
    assert errors == [f"make models: {specs / 'shapes.yaml'}: model.labels: 5 labels, but the model's output "
                      "is (2, 4) for a batch of 2 (expected (2, 5))"], result.stderr
    assert "Traceback" not in result.stderr
    assert not store.exists() or list(store.iterdir()) == []
