"""Serving variants: the same archive with other TorchServe settings, and the bench's inputs."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import yaml
from PIL import Image

from bench.workloads import photo_payloads
from stackctl.catalog.archive import write_variant
from stackctl.catalog.archive_files import MANIFEST, read_config


def _archive(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(MANIFEST, json.dumps({"model": {"modelName": "digits", "configFile": "model-config.yaml",
                                                   "serializedFile": "weights.pt"}}))
        z.writestr("model-config.yaml", yaml.safe_dump({"batchSize": 16, "maxBatchDelay": 5,
                                                        "handler": {"name": "digits", "top_k": 3}}))
        z.writestr("weights.pt", b"\x00" * 1000)
    return path


def test_variant_changes_only_serving_settings_and_name(tmp_path: Path) -> None:
    source = _archive(tmp_path / "digits.mar")
    out = write_variant(source, tmp_path / "store", "digits-b1", {"batchSize": 1}, {"torch_threads": 1})
    assert out == tmp_path / "store" / "digits-b1.mar"
    config = read_config(out)
    assert config["batchSize"] == 1 and config["maxBatchDelay"] == 5
    assert config["handler"] == {"name": "digits", "top_k": 3, "torch_threads": 1}  # answers keep the name
    with zipfile.ZipFile(out) as z:
        assert json.loads(z.read(MANIFEST))["model"]["modelName"] == "digits-b1"
        assert z.read("weights.pt") == b"\x00" * 1000


def test_photo_payloads_are_seeded_rgb_jpegs() -> None:
    first, again = photo_payloads(4), photo_payloads(4)
    assert [p.body for p in first] == [p.body for p in again]
    image = Image.open(io.BytesIO(first[0].body))
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (320, 240))
    assert first[0].content_type == "image/jpeg"
