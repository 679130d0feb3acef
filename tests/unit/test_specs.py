from __future__ import annotations

import copy
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from handlers.sections import written
from stackctl import paths
from stackctl.catalog.specs import SpecError, all_specs, get_spec, load_spec, load_specs


def test_shipped_specs_load_and_name_the_contract_models() -> None:
    specs = {s.name: s for s in load_specs()}
    assert {"digits", "langid"} <= set(specs)
    for spec in specs.values():
        assert spec.slo.p95_ms < spec.slo.p99_ms
        assert 0 <= spec.slo.max_error_ratio < 1
        config = spec.model_config()
        assert config["batchSize"] >= 1 and config["handler"]["top_k"] == 3
        assert config["handler"]["architecture"] == spec.architecture


def _write(tmp_path: Path, doc: dict, file_name: str | None = None) -> Path:
    path = tmp_path / (file_name or f"{doc.get('name', 'x')}.yaml")
    path.write_text(yaml.safe_dump(doc))
    return path


def _digits() -> dict:
    return yaml.safe_load(Path("config/models/digits.yaml").read_text())


def _set(doc: dict, dotted: str, value: object) -> dict:
    """`doc` with the key at `dotted` (a.b.c) set to `value`, or removed when value is DROP."""
    doc = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    node = doc
    for key in parents:
        node = node[key]
    if value is DROP:
        del node[last]
    else:
        node[last] = value
    return doc


DROP = object()

# (key set, value, the key the one-line message must name, what it must say is expected)
SCHEMA_CASES = [
    ("extra", 1, "extra", "unknown key"),
    ("model.weigths", "w.pt", "model.weigths", "unknown key; expected one of architecture"),
    ("serving.batchsize", 4, "serving.batchsize", "unknown key; expected one of batchSize"),
    ("handler.topk", 3, "handler.topk", "unknown key"),
    ("handler.image.colour_mode", "L", "handler.image.colour_mode", "expected one of center_crop, color_mode"),
    ("handler.image.ink.margn", 0.1, "handler.image.ink.margn", "unknown key"),
    ("handler.text", {"max_char": 3}, "handler.text.max_char", "expected one of max_bytes, max_chars"),
    ("slo.p90_ms", 100, "slo.p90_ms", "unknown key"),
    ("load.wieght", 2, "load.wieght", "expected one of image_formats, image_sizes, samples, text_words, weight"),
    ("serving.batchSize", "8", "serving.batchSize", "'8' is not of type 'integer'"),
    ("serving.maxBatchDelay", 0, "serving.maxBatchDelay", "100 ms default"),
    ("handler.top_k", 2.5, "handler.top_k", "not of type 'integer'"),
    ("handler.image.color_mode", "CMYK", "handler.image.color_mode", "'CMYK' is not one of ['L', 'RGB']"),
    ("load.weight", 0, "load.weight", "less than the minimum of 1"),
    ("load.image_formats", ["tiff"], "load.image_formats.0", "is not one of ['png', 'jpeg'"),
    ("load.image_sizes", ["8"], "load.image_sizes.0", "not of type 'integer'"),
    ("load.samples", 3, "load.samples", "not of type 'string'"),
    ("load.text_words", [{"words": [1], "share": 1}], "load.text_words.0.words", "too short"),
    ("load.text_words", [{"words": [1, 2]}], "load.text_words.0.share", "missing"),
    ("slo", DROP, "slo", "missing; it is required"),
    ("model.train", DROP, "model.weights", "missing; it is required"),
    ("model.architecture", "resnet18", "model.architecture", "torchvision:<arch>"),
    ("model.weights", "model.pt2", "model.architecture", "not allowed with a .pt2 program"),
]


@pytest.mark.parametrize(("key", "value", "named", "expected"), SCHEMA_CASES, ids=[c[0] + "-" + c[2] for c in SCHEMA_CASES])
def test_each_schema_violation_is_one_line_naming_the_file_and_the_key(tmp_path: Path, key: str, value: object,
                                                                      named: str, expected: str) -> None:
    path = _write(tmp_path, _set(_digits(), key, value))
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {named}: "), message
    assert expected in message, message


def test_the_load_section_accepts_exactly_its_documented_keys(tmp_path: Path) -> None:
    load = {"weight": 3, "samples": "/data/samples", "image_sizes": [8, 64], "image_formats": ["png", "jpg", "gif"],
            "text_words": [{"words": [1, 1], "share": 0.5}, {"words": [2, 8], "share": 0.5}]}
    spec = load_spec(_write(tmp_path, dict(_digits(), load=load)))
    assert written(spec.load) == load and spec.load_weight == 3


def test_the_file_is_named_after_the_model_or_its_version(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"other\.yaml: name: the file must be digits\.yaml .* or digits@1\.0\.yaml"):
        load_spec(_write(tmp_path, _digits(), "other.yaml"))
    second = load_spec(_write(tmp_path, dict(_digits(), version="2.0"), "digits@2.0.yaml"))
    assert (second.key, second.is_default, second.archive_path.name) == ("digits@2.0", False, "digits@2.0.mar")


def test_another_version_needs_the_default_beside_it(tmp_path: Path) -> None:
    path = _write(tmp_path, dict(_digits(), version="2.0"), "digits@2.0.yaml")
    with pytest.raises(SpecError, match=f"{path}: name: digits@<version>.yaml needs digits.yaml beside it"):
        all_specs(tmp_path)
    _write(tmp_path, _digits())
    assert [s.key for s in all_specs(tmp_path)] == ["digits", "digits@2.0"]
    assert [s.key for s in load_specs(tmp_path)] == ["digits"]


def test_relative_data_paths_follow_model_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _set(_set(_digits(), "model.train", DROP), "model.weights", "digits/w.pt")
    doc["model"]["labels"] = "/abs/labels.txt"
    monkeypatch.delenv("MODEL_DATA", raising=False)
    assert load_spec(_write(tmp_path, doc)).weights_path == paths.ROOT / "digits" / "w.pt"
    monkeypatch.setenv("MODEL_DATA", str(tmp_path / "data"))
    spec = load_spec(_write(tmp_path, doc))
    assert spec.weights_path == tmp_path / "data" / "digits" / "w.pt"
    assert spec.labels_path == Path("/abs/labels.txt")
    # A trained model's files are where training writes them, whatever MODEL_DATA says.
    assert get_spec("langid").extra_files[0] == paths.MODEL_BUILD / "langid" / "vocab.json"


# The torchvision spec the README documented before brought models had a schema: it must still load.
README_BEFORE_SCHEMA = """\
name: flowers
version: "1.0"
model:
  handler: handlers/image_classifier.py
  architecture: torchvision:resnet18      # any torchvision.models classification architecture
  weights: /data/flowers/resnet18.pt      # a state_dict
  labels: /data/flowers/labels.json       # {"0": "daisy", "1": "rose", ...}
serving: {minWorkers: 1, maxWorkers: 1, batchSize: 8, maxBatchDelay: 10, responseTimeout: 60}
handler:
  top_k: 5
  image: {color_mode: RGB, resize: 256, center_crop: 224,
          mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225],
          max_pixels: 25000000, max_bytes: 8388608}
  channels_last: true
  precision: bf16
slo: {p95_ms: 300, p99_ms: 600, max_error_ratio: 0.01}
load: {weight: 1}
"""


def _readme_specs() -> list[str]:
    """The YAML blocks of the README that are specs (they have a `name:` line at the top level)."""
    blocks = re.findall(r"```yaml\n(.*?)```", (paths.ROOT / "README.md").read_text(), re.S)
    return [textwrap.dedent(b) for b in blocks if re.search(r"(?m)^\s*name: ", b)]


@pytest.mark.parametrize("text", [README_BEFORE_SCHEMA, *_readme_specs()], ids=lambda t: t.split("\n")[0].split()[-1])
def test_the_specs_the_readme_shows_load_as_written(tmp_path: Path, text: str) -> None:
    doc = yaml.safe_load(text)
    path = tmp_path / f"{doc['name']}.yaml"
    path.write_text(text)
    spec = load_spec(path)
    assert spec.labels_path.name.startswith("labels") and spec.weights_path.suffix in (".pt", ".pt2")


def test_the_readme_shows_the_three_ways() -> None:
    shown = [yaml.safe_load(t)["model"] for t in _readme_specs()]
    assert {"torchvision:resnet18", None, "models.langid:LangIdGRU"} == {m.get("architecture") for m in shown}
