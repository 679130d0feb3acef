"""Build model archives: train (when the spec names a training module), then torch-model-archiver.

Both steps are skipped when their inputs have not changed (a fingerprint of the files and
settings they read), so `make models` on an up-to-date tree does no work.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from stackctl import paths
from stackctl.specs import ModelSpec, load_specs, workers_on_host

# Packages copied into every archive root so `import handlers.x` / `import models.x` work in a worker.
ARCHIVE_PACKAGES = ("handlers", "models")


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
    preprocessing = {k: spec.handler_config[k] for k in ("image", "text") if k in spec.handler_config}
    # handlers/image.py and the image_* modules it joins (settings, decoding, transforms); the
    # handler classes (*_classifier.py) are serving glue, not preprocessing.
    inputs += [f for kind in preprocessing for f in sorted((paths.ROOT / "handlers").glob(f"{kind}*.py"))
               if not f.stem.endswith("_classifier")]
    inputs += [paths.ROOT / "handlers" / f for f in ("errors.py", "payload.py")]
    return fingerprint(inputs, {"model": [spec.architecture, spec.arguments, spec.train_module],
                                "preprocessing": preprocessing})


def train_if_needed(spec: ModelSpec, force: bool = False) -> bool:
    """Train into build/models/<name>/ unless its inputs are unchanged. True when it trained."""
    if spec.train_module is None:
        missing = [p for p in (spec.weights_path, spec.labels_path) if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{spec.name}: no training module and missing {missing}")
        return False
    value = training_fingerprint(spec)
    stamp = spec.build_dir / "train.fingerprint"
    if not force and _stamp_matches(stamp, value, spec.weights_path, spec.labels_path):
        return False
    print(f"[{spec.name}] training ({spec.train_module}.train)", flush=True)
    metadata = importlib.import_module(spec.train_module).train(spec, spec.build_dir)
    print(f"[{spec.name}] held-out accuracy {metadata['held_out_accuracy']:.4f} "
          f"({metadata['train_seconds']} s)", flush=True)
    stamp.write_text(value)
    return True


def model_config(spec: ModelSpec) -> dict[str, Any]:
    """The archive's model-config.yaml, with the trained arguments and the held-out accuracy."""
    extra: dict[str, Any] = {}
    arguments_file = spec.build_dir / "arguments.json"
    if arguments_file.is_file():
        extra["arguments"] = {**spec.arguments, **json.loads(arguments_file.read_text())}
    # How many workers share a host when every spec is served together (the image and the
    # cluster serve all of them): workers size their torch thread pools from it.
    extra["workers_on_host"] = workers_on_host(load_specs())
    metadata_file = spec.build_dir / "metadata.json"
    if metadata_file.is_file():
        extra["training"] = json.loads(metadata_file.read_text())
    return spec.model_config(extra)


def write_archive(spec: ModelSpec, config: dict[str, Any], store: Path, stage: Path,
                  data_files: dict[str, Path | str], header: str) -> Path:
    """store/<name>.mar by torch-model-archiver: the handler and model packages, `data_files`
    (archive name -> a file to copy, or text) at the archive root, and `config` as its
    model-config.yaml under a `header` comment. `stage` is rebuilt from scratch."""
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
    command = [str(Path(sys.executable).with_name("torch-model-archiver")),
               "--model-name", spec.name, "--version", spec.version,
               "--serialized-file", str(spec.weights_path), "--handler", str(spec.handler_file),
               "--extra-files", str(stage), "--config-file", str(config_file),
               "--export-path", str(store), "--force"]
    subprocess.run(command, check=True, cwd=paths.ROOT)
    return store / f"{spec.name}.mar"


def archive_inputs(spec: ModelSpec) -> list[Path]:
    """The files an archive is built from: the packages, the weights and the labels."""
    return _python_files("handlers") + _python_files("models") + [spec.weights_path, spec.labels_path]


def archive_if_needed(spec: ModelSpec, force: bool = False) -> bool:
    """model_store/<name>.mar from the trained artifacts, unless unchanged. True when it archived."""
    config = model_config(spec)
    inputs = archive_inputs(spec) + [p for p in (spec.build_dir / "vocab.json",) if p.is_file()]
    value = fingerprint(inputs, {"config": config, "version": spec.version, "handler": str(spec.handler_file)})
    stamp = spec.build_dir / "archive.fingerprint"
    if not force and _stamp_matches(stamp, value, spec.archive_path):
        return False
    data_files: dict[str, Path | str] = {"labels.json": spec.labels_path}
    for name in ("vocab.json", "metadata.json"):
        if (spec.build_dir / name).is_file():
            data_files[name] = spec.build_dir / name
    print(f"[{spec.name}] archiving -> {paths.shown(spec.archive_path)}", flush=True)
    write_archive(spec, config, paths.MODEL_STORE, spec.build_dir / "archive", data_files,
                  f"Generated from {paths.shown(spec.source)} by stackctl; do not edit.")
    stamp.write_text(value)
    return True


def build(specs: list[ModelSpec], force: bool = False) -> list[str]:
    """Train and archive each model as needed; returns the names that were rebuilt."""
    rebuilt = []
    for spec in specs:
        trained = train_if_needed(spec, force=force)
        archived = archive_if_needed(spec, force=force or trained)
        if trained or archived:
            rebuilt.append(spec.name)
        else:
            print(f"[{spec.name}] up to date: {paths.shown(spec.archive_path)}")
    return rebuilt
