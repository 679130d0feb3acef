"""The bench's model stores: one fresh, empty store per measurement (variants of an archive are
written into it by stackctl.catalog.archive.write_variant, which owns every archive)."""
from __future__ import annotations

import shutil
from pathlib import Path


def fresh_store(folder: Path) -> Path:
    """An empty model store (its path contains "model_store": config.properties' allowed_urls)."""
    store = folder / "model_store"
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    return store
