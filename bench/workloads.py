"""The three benchmark workloads: their specs, archives and request bodies.

* `digits`, `langid`: the served models (config/models/), overhead-dominated (tiny compute); their
  archives are model_store/<name>.mar as `make models` built them, their bodies the load test's.
* `mobilenet`: compute-bound, torchvision mobilenet_v3_small at 224x224 with RANDOMLY INITIALISED
  weights (seed 0; never trained, never downloaded), served by the same image handler. Its spec is
  bench/models/mobilenet.yaml and its archive goes to build/bench/model_store/, never model_store/.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from loadtest.payloads import Payload, payloads_for
from stackctl import paths
from stackctl.archive import archive_inputs, fingerprint, write_archive
from stackctl.specs import ModelSpec, get_spec, load_spec

BENCH = paths.ROOT / "bench"
BENCH_BUILD = paths.BUILD / "bench"
# "model_store" in the path: config.properties only allows archives from such folders.
BENCH_STORE = BENCH_BUILD / "model_store"
MOBILENET_SPEC = BENCH / "models" / "mobilenet.yaml"
RANDOM_INIT_SEED = 0
RANDOM_INIT_NOTE = "RANDOMLY INITIALISED weights (torch.manual_seed(0)); not trained; for timing only"
PHOTO_SIZE = (320, 240)      # a QVGA "photo": resized to 256 on the short side, centre-cropped to 224
PHOTOS = 64


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str                 # "overhead" (tiny compute) or "compute"
    spec: ModelSpec
    note: str = ""

    @property
    def archive(self) -> Path:
        """The archive the bench serves (variants are copies of it with other serving settings)."""
        return BENCH_STORE / f"{self.name}.mar" if self.name == "mobilenet" else self.spec.archive_path

    def payloads(self) -> list[Payload]:
        if self.name == "mobilenet":
            return photo_payloads()
        return list(payloads_for(self.spec).good)


def workloads(names: list[str] | None = None) -> list[Workload]:
    known = {
        "digits": Workload("digits", "overhead", get_spec("digits"),
                           "small CNN on 8x8 digits; mixed image sizes/formats"),
        "langid": Workload("langid", "overhead", get_spec("langid"), "char GRU; words and short texts"),
        "mobilenet": Workload("mobilenet", "compute", load_spec(MOBILENET_SPEC),
                              f"torchvision mobilenet_v3_small 224x224, {RANDOM_INIT_NOTE}"),
    }
    unknown = set(names or []) - set(known)
    if unknown:
        raise ValueError(f"unknown workloads {sorted(unknown)}; known: {sorted(known)}")
    return [known[n] for n in (names or known)]


def photo_payloads(count: int = PHOTOS, size: tuple[int, int] = PHOTO_SIZE) -> list[Payload]:
    """Seeded RGB JPEGs with photo-like content (smooth colour fields plus grain), raw bytes."""
    rng = np.random.default_rng(RANDOM_INIT_SEED)
    out = []
    for i in range(count):
        coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
        grain = rng.integers(-12, 13, size=smooth.shape, dtype=np.int16)
        buffer = io.BytesIO()
        Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
        out.append(Payload(buffer.getvalue(), "image/jpeg", f"photo-{i}"))
    random.Random(RANDOM_INIT_SEED).shuffle(out)
    return out


# --- the bench-only archive -------------------------------------------------------------------

def random_init_weights(spec: ModelSpec) -> None:
    """weights.pt and labels.json for a torchvision architecture, randomly initialised (seeded)."""
    import torch

    from handlers.runtime import build_model

    classes = 1000
    if spec.weights_path.is_file() and spec.labels_path.is_file():
        return
    spec.weights_path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(RANDOM_INIT_SEED)
    model = build_model(spec.architecture, spec.arguments, classes)
    torch.save(model.state_dict(), spec.weights_path)
    labels = {str(i): f"random-init-class-{i:03d}" for i in range(classes)}
    spec.labels_path.write_text(json.dumps(labels) + "\n")


def ensure_bench_archive(spec: ModelSpec, store: Path = BENCH_STORE) -> Path:
    """store/<name>.mar for a bench-only spec; skipped when its inputs have not changed."""
    random_init_weights(spec)
    config = spec.model_config()
    value = fingerprint(archive_inputs(spec) + [spec.source], {"config": config, "version": spec.version})
    target = store / f"{spec.name}.mar"
    stamp = BENCH_BUILD / spec.name / "archive.fingerprint"
    if target.is_file() and stamp.is_file() and stamp.read_text() == value:
        return target
    print(f"[{spec.name}] archiving -> {target.relative_to(paths.ROOT)} ({RANDOM_INIT_NOTE})", flush=True)
    write_archive(spec, config, store, BENCH_BUILD / spec.name / "archive",
                  {"labels.json": spec.labels_path, "metadata.json": json.dumps({"weights": RANDOM_INIT_NOTE}) + "\n"},
                  f"Generated from {spec.source.relative_to(paths.ROOT)} by bench; {RANDOM_INIT_NOTE}.")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(value)
    return target


def ensure_archives(selected: list[Workload]) -> None:
    """Build the bench-only archive; the served models' archives must come from `make models`."""
    for w in selected:
        if w.name == "mobilenet":
            ensure_bench_archive(w.spec)
        elif not w.archive.is_file():
            raise FileNotFoundError(f"{w.archive} is missing: run `make models` first")


def run_folder(kind: str) -> Path:
    """build/bench/<kind>/<time>-<pid>/: one per run, so concurrent runs (a test beside a
    `make bench`) never share or delete each other's stores and logs."""
    folder = BENCH_BUILD / kind / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    folder.mkdir(parents=True)
    return folder


def tidy_run_folder(folder: Path) -> None:
    """Drop a finished run's bulky copies (variant archives, pickled bodies); keep its logs."""
    for store in folder.glob("**/model_store"):
        shutil.rmtree(store, ignore_errors=True)
    for bodies in folder.glob("**/payloads.pkl"):
        bodies.unlink()


def payload_digest(payloads: list[Payload]) -> str:
    """Identifies the inputs, so a result says which bodies all its measurements used."""
    digest = hashlib.sha256()
    for p in payloads:
        digest.update(p.content_type.encode())
        digest.update(p.body)
    return digest.hexdigest()[:16]
