"""Reading a built archive (.mar): its manifest, its model-config.yaml, its files.

The reading half of stackctl.catalog.archive, which owns archives; kept apart because the serving image's
entry point reads archives too (versions, the front door's wait bounds, the model puller), and
stackctl.catalog.archive imports the spec loader (jsonschema), which that image does not install. Only
zipfile, json and yaml here.
"""
from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

MANIFEST = "MAR-INF/MANIFEST.json"
CONFIG_FILE = "model-config.yaml"


class NotAnArchive(ValueError):
    """The file is not a TorchServe archive with a manifest."""


def read_manifest(archive_file: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(archive_file) as z:
            return dict(json.loads(z.read(MANIFEST)))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise NotAnArchive(f"{archive_file} is not a TorchServe archive with a manifest: {exc}") from None


def read_config(archive_file: Path) -> dict[str, Any]:
    """The archive's model-config.yaml, as written: TorchServe's keys on top (ServingSettings),
    ours under `handler:` (HandlerSettings) — read them with those classes' from_config. {} for an
    archive without one (TorchServe's defaults then apply)."""
    name = read_manifest(archive_file)["model"].get("configFile", CONFIG_FILE)
    with zipfile.ZipFile(archive_file) as z:
        if name not in z.namelist():
            return {}
        loaded = yaml.safe_load(z.read(name))
    return loaded if isinstance(loaded, dict) else {}


def unpack(archive_file: Path, into: Path | None = None, leave_out: tuple[str, ...] = ()) -> Path:
    """The archive's files in `into` (default: a new temporary folder), as TorchServe unpacks them;
    `leave_out`: top-level folders not to unpack (the Triton repository takes the code from the
    repository: stackctl/serve/triton_repo.py)."""
    target = Path(into or tempfile.mkdtemp(prefix=f"{archive_file.stem}-"))
    with zipfile.ZipFile(archive_file) as z:
        z.extractall(target, [n for n in z.namelist() if n.split("/", 1)[0] not in leave_out])
    return target
