"""Model archives, built and read here only: train (when the spec names a training module), then
torch-model-archiver, into any store (model_store/, the bench's, a test's); an archive's manifest
and model-config.yaml; serving variants of an archive (the bench's).

Both build steps are skipped when their inputs have not changed (a fingerprint of the files and
settings they read, in a stamp beside the output), so `make models` on an up-to-date tree does no work.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from handlers.labels import labels_json
from handlers.sections import written
from stackctl import paths
from stackctl.catalog import model_check
from stackctl.catalog.archive_files import CONFIG_FILE, MANIFEST
from stackctl.catalog.specs import ModelSpec, all_specs, workers_on_host

# Packages copied into every archive root so `import handlers.x` / `import models.x` work in a worker.
ARCHIVE_PACKAGES = ("handlers", "models")


@dataclass(frozen=True)
class Contents:
    """What an archive holds besides the packages, the handler and the weights."""

    config: dict[str, Any]                  # its model-config.yaml
    data_files: dict[str, Path | str]       # archive name -> a file to copy, or text
    header: str                             # the comment atop model-config.yaml
    note: str = ""                          # said when it is built


def _python_files(package: str) -> list[Path]:
    return sorted((paths.ROOT / package).glob("*.py"))


def fingerprint(files: Iterable[Path], settings: Any) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for f in sorted(set(files)):
        digest.update(str(paths.shown(f)).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


def _stamp_matches(stamp: Path, value: str, *outputs: Path) -> bool:
    return stamp.is_file() and stamp.read_text() == value and all(o.exists() for o in outputs)


def training_fingerprint(spec: ModelSpec) -> str:
    """What training reads: its model module, the shared loop, the preprocessing it shares with
    the server and the settings of that preprocessing (serving knobs such as batching, threads
    or top_k do not change the weights, so tuning them never retrains)."""
    module_file = paths.ROOT / (str(spec.train_module).replace(".", "/") + ".py")
    inputs = [module_file, paths.ROOT / "models" / "training.py"]
    # Its own helper modules (models/langid_data.py) and the script that lists the Debian
    # packages its data comes from (word lists, manual pages, message catalogues).
    inputs += sorted(module_file.parent.glob(f"{module_file.stem}_*.py"))
    inputs += [paths.ROOT / "scripts" / "install-system-deps.sh"]
    preprocessing = {k: v for k, v in written(spec.handler).items() if k in spec.input_kinds}
    # handlers/image.py and the image_* modules it joins (settings, decoding, transforms); the
    # handler classes (*_classifier.py) are serving glue, not preprocessing.
    inputs += [f for kind in preprocessing for f in sorted((paths.ROOT / "handlers").glob(f"{kind}*.py"))
               if not f.stem.endswith("_classifier")]
    inputs += [paths.ROOT / "handlers" / f for f in ("errors.py", "payload.py", "sections.py")]
    return fingerprint(inputs, {"model": [spec.architecture, spec.arguments, spec.train_module],
                                "preprocessing": preprocessing})


def train_if_needed(spec: ModelSpec, force: bool = False) -> bool:
    """Train into build/models/<name>/ unless its inputs are unchanged. True when it trained."""
    if spec.train_module is None:
        return False
    value = training_fingerprint(spec)
    stamp = spec.build_dir / "train.fingerprint"
    if not force and _stamp_matches(stamp, value, spec.weights_path, spec.labels_path):
        return False
    print(f"[{spec.key}] training ({spec.train_module}.train)", flush=True)
    metadata = importlib.import_module(spec.train_module).train(spec, spec.build_dir)
    print(f"[{spec.key}] held-out accuracy {metadata['held_out_accuracy']:.4f} "
          f"({metadata['train_seconds']} s)", flush=True)
    stamp.write_text(value)
    return True


def model_config(spec: ModelSpec) -> dict[str, Any]:
    """The archive's model-config.yaml, with the trained arguments and the held-out accuracy."""
    extra: dict[str, Any] = {"arguments": model_check.trained_arguments(spec)}
    # How many workers share a host when every spec is served together (the image and the
    # cluster serve all of them, other versions included): workers size their thread pools from it.
    extra["workers_on_host"] = workers_on_host(all_specs())
    metadata_file = spec.build_dir / "metadata.json"
    if spec.train_module and metadata_file.is_file():
        extra["training"] = json.loads(metadata_file.read_text())
    return spec.model_config(extra)


def write_archive(spec: ModelSpec, config: dict[str, Any], store: Path, stage: Path,
                  data_files: dict[str, Path | str], header: str, target: Path | None = None) -> Path:
    """`target` (default store/<name>.mar) by torch-model-archiver: the handler and model
    packages, `data_files` (archive name -> a file to copy, or text) at the archive root, and
    `config` as its model-config.yaml under a `header` comment. `stage` is rebuilt from scratch.
    The archive appears at `target` whole or not at all: it is written into a hidden folder of
    the store (TorchServe and the image's COPY skip it) and renamed into place."""
    target = target or store / f"{spec.name}.mar"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for package in ARCHIVE_PACKAGES:
        shutil.copytree(paths.ROOT / package, stage / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name, source in data_files.items():
        if isinstance(source, Path):
            shutil.copy2(source, stage / name)
        else:
            (stage / name).write_text(source)
    config_file = stage.parent / "model-config.yaml"
    config_file.write_text(f"# {header}\n" + yaml.safe_dump(config, sort_keys=False))
    store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".partial-", dir=store) as partial:
        command = [str(Path(sys.executable).with_name("torch-model-archiver")),
                   "--model-name", spec.name, "--version", spec.version,
                   "--serialized-file", str(spec.weights_path), "--handler", str(spec.handler_file),
                   "--extra-files", str(stage), "--config-file", str(config_file),
                   "--export-path", partial, "--force"]
        subprocess.run(command, check=True, cwd=paths.ROOT)
        os.replace(Path(partial) / f"{spec.name}.mar", target)
    return target


def archive_inputs(spec: ModelSpec) -> list[Path]:
    """The files an archive is built from: the packages, the weights, the labels, the extra files."""
    return (_python_files("handlers") + _python_files("models")
            + [spec.weights_path, spec.labels_path, *spec.extra_files])


def _archive_stamp(target: Path) -> Path:
    # Beside the archive, hidden: each store (model_store/, the bench's, a test's) has its own.
    return target.with_name(f".{target.name}.fingerprint")


def _config_fingerprint(spec: ModelSpec, config: dict[str, Any]) -> str:
    return fingerprint(archive_inputs(spec), {"config": config, "version": spec.version,
                                              "handler": str(spec.handler_file)})


def archive_fingerprint(spec: ModelSpec) -> tuple[dict[str, Any], str]:
    config = model_config(spec)
    return config, _config_fingerprint(spec, config)


def archive_needed(spec: ModelSpec, force: bool = False) -> bool:
    return force or not _stamp_matches(_archive_stamp(spec.archive_path), archive_fingerprint(spec)[1],
                                       spec.archive_path)


def served_contents(spec: ModelSpec) -> Contents:
    """A served model's archive: its model-config.yaml with the trained arguments, workers on the
    host and the held-out accuracy; its labels as labels.json; its extra files."""
    data_files: dict[str, Path | str] = {"labels.json": labels_json(model_check.labels(spec))}
    data_files.update({p.name: p for p in spec.extra_files})
    return Contents(model_config(spec), data_files, f"Generated from {paths.shown(spec.source)} by stackctl; do not edit.")


def archive(spec: ModelSpec, store: Path | None = None, contents: Contents | None = None, force: bool = False) -> Path:
    """store/<key>.mar (default: the spec's place in model_store/, with `served_contents`), unless
    the stamp beside it says its inputs have not changed. A served model is checked first (see build)."""
    target = store / f"{spec.key}.mar" if store is not None else spec.archive_path
    contents = contents or served_contents(spec)
    value = _config_fingerprint(spec, contents.config)
    if not force and _stamp_matches(_archive_stamp(target), value, target):
        return target
    note = f" ({contents.note})" if contents.note else ""
    print(f"[{spec.key}] archiving -> {paths.shown(target)}{note}", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"archive-{spec.key}-") as stage:
        write_archive(spec, contents.config, target.parent, Path(stage) / "files", contents.data_files,
                      contents.header, target)
    _archive_stamp(target).write_text(value)
    return target


def build(specs: list[ModelSpec], force: bool = False) -> list[str]:
    """Train and archive each model as needed; returns the keys that were rebuilt.

    Every check runs before the first archive is written, so a bad spec leaves the store as it
    was: the files of models brought without training, then training, then the model checks
    (load + one forward pass) of every archive about to be written."""
    for spec in specs:
        model_check.check_files(spec)
    trained = {spec.key for spec in specs if train_if_needed(spec, force=force)}
    todo = [spec for spec in specs if archive_needed(spec, force or spec.key in trained)]
    for spec in todo:
        model_check.check(spec)
    for spec in todo:
        archive(spec, force=True)
    for spec in specs:
        if spec not in todo:
            print(f"[{spec.key}] up to date: {paths.shown(spec.archive_path)}")
    return [spec.key for spec in todo]


# --- reading an archive, and serving variants of it -----------------------------------------------

def write_variant(archive_file: Path, store: Path, name: str, serving: dict[str, Any],
                  handler: dict[str, Any] | None = None, entry: Path | None = None) -> Path:
    """store/<name>.mar: `archive_file` with `serving` keys (and `handler` keys) replaced; `entry`, a
    handler file added to the archive and named as its handler instead of the archive's own.

    TorchServe reads batchSize, maxBatchDelay and workers from the archive's own model-config.yaml,
    which wins over config.properties, and our config.properties closes the management API that
    could change them at run time: so a setting under test is a copy of the archive with that file
    (and the model name in the manifest) rewritten; code and weights are unchanged."""
    store.mkdir(parents=True, exist_ok=True)
    target = store / f"{name}.mar"
    with zipfile.ZipFile(archive_file) as src, zipfile.ZipFile(target, "w") as dst:
        manifest = json.loads(src.read(MANIFEST))
        config_name = manifest["model"].get("configFile", CONFIG_FILE)
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
