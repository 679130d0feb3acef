"""A built archive with other serving settings, for fault tests: the same zip with its
model-config.yaml's TorchServe keys replaced (no archiver run, no training). The store it is
written to must have "model_store" in its path (config.properties' allowed_urls)."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import yaml


def with_serving(source: Path, target: Path, **serving: Any) -> Path:
    """`target`: `source` with `serving` over its model-config.yaml (minWorkers=1, ...)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename == "model-config.yaml":
                config = yaml.safe_load(data)
                config.update(serving)
                data = ("# tests/variant_archives.py: " + ", ".join(f"{k}={v}" for k, v in serving.items())
                        + "\n" + yaml.safe_dump(config, sort_keys=False)).encode()
            new.writestr(item, data)
    return target
