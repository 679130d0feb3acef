"""The Triton model repository generator (stackctl/serve/triton_repo.py): config.pbtxt from the
archives' model-config.yaml, the version mapping (the default archive highest), the files of each
version, and streaming models skipped with their reason. Archives: copies of the built ones with
their manifest and config rewritten."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import yaml

from stackctl import paths
from stackctl.serve import triton_repo


def rewritten(source: Path, target: Path, version: str, **config: Any) -> Path:
    """`source` copied to `target` with modelVersion `version` and model-config.yaml keys `config`."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename == "MAR-INF/MANIFEST.json":
                manifest = json.loads(data)
                manifest["model"]["modelVersion"] = version
                data = json.dumps(manifest).encode()
            elif item.filename == "model-config.yaml":
                data = yaml.safe_dump({**yaml.safe_load(data), **config}).encode()
            new.writestr(item, data)
    return target


def store(tmp_path: Path) -> Path:
    folder = tmp_path / "store"
    folder.mkdir()
    built = paths.MODEL_STORE
    rewritten(built / "digits.mar", folder / "digits.mar", "1.0", batchSize=4, maxBatchDelay=5, minWorkers=3,
              maxWorkers=3)
    rewritten(built / "digits.mar", folder / "digits@10.0.mar", "10.0")
    rewritten(built / "digits.mar", folder / "digits@2.0.mar", "2.0")
    rewritten(built / "langid.mar", folder / "langid.mar", "1.0")
    rewritten(built / "langid.mar", folder / "stream.mar", "1.0", sequence={"max_sessions": 4})
    return folder


def test_config_versions_and_files(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    mapping = triton_repo.generate(store(tmp_path), out, gpu=False)
    # The default (digits.mar) is the highest number: Triton's unversioned requests go there.
    assert mapping["models"] == {"digits": {"1": "2.0", "2": "10.0", "3": "1.0"}, "langid": {"1": "1.0"}}
    assert list(mapping["skipped"]) == ["stream.mar"] and "sequence" in mapping["skipped"]["stream.mar"]
    assert json.loads((out / triton_repo.VERSIONS_FILE).read_text()) == mapping
    assert (out / "digits" / "config.pbtxt").read_text() == """name: "digits"
backend: "python"
max_batch_size: 4
dynamic_batching { max_queue_delay_microseconds: 5000 }
instance_group [ { count: 3, kind: KIND_CPU } ]
version_policy: { all { } }
input [
  { name: "image", data_type: TYPE_STRING, dims: [ 1 ] }
]
output [
  { name: "label", data_type: TYPE_STRING, dims: [ 3 ] },
  { name: "probability", data_type: TYPE_FP32, dims: [ 3 ] }
]
"""
    version = out / "digits" / "3"
    assert {"model.py", "weights.pt", "labels.json", "model-config.yaml"} <= {p.name for p in version.iterdir()}
    assert (version / "MAR-INF" / "MANIFEST.json").is_file()
    assert not (version / "handlers").exists() and not (version / "models").exists()  # the code is the repository's
    assert "from handlers.triton_model import TritonPythonModel" in (version / "model.py").read_text()
    assert 'name: "text"' in (out / "langid" / "config.pbtxt").read_text()
    assert not (out / "stream").exists()


def test_gpu_instances_and_the_mapping_text(tmp_path: Path) -> None:
    out = tmp_path / "repo"
    mapping = triton_repo.generate(store(tmp_path), out, gpu=True)
    assert "kind: KIND_GPU" in (out / "langid" / "config.pbtxt").read_text()
    text = triton_repo.describe(mapping)
    assert "  digits: 1 -> 2.0, 2 -> 10.0, 3 -> 1.0" in text and "skipped stream.mar" in text


def test_version_order_is_natural() -> None:
    assert sorted(["10.0", "2.0", "1.5", "1.10"], key=triton_repo.version_key) == ["1.5", "1.10", "2.0", "10.0"]
