"""Serving variants of an archive: the same .mar with other TorchServe settings, under another name.

TorchServe reads batchSize, maxBatchDelay and workers from the archive's own model-config.yaml,
which wins over config.properties, and our config.properties closes the management API that could
change them at run time. So a setting under test is a copy of the archive with that file (and
the model name in the manifest) rewritten; the code, weights and handler settings are unchanged.
"""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import yaml

MANIFEST = "MAR-INF/MANIFEST.json"


def read_config(archive: Path) -> dict[str, Any]:
    with zipfile.ZipFile(archive) as z:
        manifest = json.loads(z.read(MANIFEST))
        return yaml.safe_load(z.read(manifest["model"].get("configFile", "model-config.yaml"))) or {}


def write_variant(archive: Path, store: Path, name: str, serving: dict[str, Any],
                  handler: dict[str, Any] | None = None, entry: Path | None = None) -> Path:
    """store/<name>.mar: `archive` with `serving` keys (and `handler` keys) replaced; `entry`, a handler
    file added to the archive and named as its handler instead of the archive's own."""
    store.mkdir(parents=True, exist_ok=True)
    target = store / f"{name}.mar"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(target, "w") as dst:
        manifest = json.loads(src.read(MANIFEST))
        config_name = manifest["model"].get("configFile", "model-config.yaml")
        config = yaml.safe_load(src.read(config_name)) or {}
        config.update(serving)
        # The answers keep the workload's name: handlers answer with handler.name, set at build time.
        config["handler"] = {**config.get("handler", {}), **(handler or {})}
        manifest["model"]["modelName"] = name
        if entry is not None:
            manifest["model"]["handler"] = entry.name
            dst.write(entry, entry.name)
        for item in src.infolist():
            if item.filename == MANIFEST:
                dst.writestr(item, json.dumps(manifest, indent=2))
            elif item.filename == config_name:
                dst.writestr(item, "# bench variant\n" + yaml.safe_dump(config, sort_keys=False))
            else:
                with src.open(item) as data, dst.open(item, "w") as out:
                    shutil.copyfileobj(data, out, 1 << 20)
    return target


def fresh_store(folder: Path) -> Path:
    """An empty model store (its path contains "model_store": config.properties' allowed_urls)."""
    store = folder / "model_store"
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    return store
