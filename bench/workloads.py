"""The benchmark workloads: their specs, archives and request bodies.

* every served model (each spec in the spec folder, `stackctl.paths.SPECS`): its archive is
  model_store/<name>.mar as `make models` built it, its bodies the load test's (loadtest/payloads.py,
  which follows the spec's `load:` section);
* the bench-only specs in bench/models/ (`mobilenet`: torchvision mobilenet_v3_small at 224x224 with
  RANDOMLY INITIALISED weights, seed 0; never trained, never downloaded): archived into
  build/bench/model_store/, never model_store/, and sent synthetic 320x240 JPEG "photos".

A workload is "compute" when its architecture is a torchvision network (ImageNet-sized convolutions
dominate the per-request cost), otherwise "overhead" (tiny compute: serving costs dominate).
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

from loadtest.payloads import Payload, payloads_for, synthetic_picture
from stackctl import paths
from stackctl.catalog.archive import Contents
from stackctl.catalog.archive import archive as build_archive
from stackctl.catalog.specs import ModelSpec, load_spec, load_specs

BENCH = paths.ROOT / "bench"
BENCH_BUILD = paths.BUILD / "bench"
# "model_store" in the path: config.properties only allows archives from such folders.
BENCH_STORE = BENCH_BUILD / "model_store"
BENCH_SPECS = BENCH / "models"
MOBILENET_SPEC = BENCH_SPECS / "mobilenet.yaml"
COMPUTE_ARCHITECTURES = "torchvision:"
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
    bench_only: bool = False  # a bench/models/ spec: archived and fed by the bench itself

    @property
    def archive(self) -> Path:
        """The archive the bench serves (variants are copies of it with other serving settings)."""
        return BENCH_STORE / f"{self.name}.mar" if self.bench_only else self.spec.archive_path

    def payloads(self) -> list[Payload]:
        if self.bench_only:
            return photo_payloads()
        return list(payloads_for(self.spec).good)


def workload_for(spec: ModelSpec, bench_only: bool = False) -> Workload:
    # A .pt2 program names no architecture: nothing tells its cost up front, so "overhead".
    kind = "compute" if (spec.architecture or "").startswith(COMPUTE_ARCHITECTURES) else "overhead"
    return Workload(spec.name, kind, spec, spec.description, bench_only)


def all_workloads() -> dict[str, Workload]:
    """Every served spec, then the bench-only ones; a bench-only name may not shadow a served model."""
    # A streaming model (a spec with `sequence:`) is left out: the bench's peers send stateless
    # requests, and a chunk means something only in its sequence (tests/integration/test_streaming.py).
    known = {spec.name: workload_for(spec) for spec in load_specs(paths.SPECS) if spec.sequence is None}
    for spec in (load_spec(p) for p in sorted(BENCH_SPECS.glob("*.yaml"))):
        if spec.name in known:
            raise ValueError(f"{spec.source}: bench-only model {spec.name!r} has the name of a served model "
                             f"({known[spec.name].spec.source})")
        known[spec.name] = workload_for(spec, bench_only=True)
    return known


def workloads(names: list[str] | None = None, served_only: bool = False) -> list[Workload]:
    """The named workloads in the order asked, or every one (served models only if `served_only`)."""
    known = all_workloads()
    unknown = set(names or []) - set(known)
    if unknown:
        raise ValueError(f"unknown workloads {sorted(unknown)}; known: {sorted(known)}")
    if names:
        return [known[n] for n in names]
    return [w for w in known.values() if not (served_only and w.bench_only)]


def photo_payloads(count: int = PHOTOS, size: tuple[int, int] = PHOTO_SIZE) -> list[Payload]:
    """Seeded RGB JPEGs with photo-like content (the load test's synthetic pictures), raw bytes."""
    rng = np.random.default_rng(RANDOM_INIT_SEED)
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        synthetic_picture(rng, *size).save(buffer, "JPEG", quality=90)
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
    assert spec.architecture is not None, f"{spec.name}: random weights are for torchvision architectures only"
    model = build_model(spec.architecture, spec.arguments, classes)
    torch.save(model.state_dict(), spec.weights_path)
    labels = {str(i): f"random-init-class-{i:03d}" for i in range(classes)}
    spec.labels_path.write_text(json.dumps(labels) + "\n")


def ensure_bench_archive(spec: ModelSpec, store: Path = BENCH_STORE) -> Path:
    """store/<name>.mar for a bench-only spec (stackctl.catalog.archive skips it when its inputs have not changed)."""
    random_init_weights(spec)
    contents = Contents(
        spec.model_config(),
        {"labels.json": spec.labels_path, "metadata.json": json.dumps({"weights": RANDOM_INIT_NOTE}) + "\n"},
        f"Generated from {spec.source.relative_to(paths.ROOT)} by bench; {RANDOM_INIT_NOTE}.", RANDOM_INIT_NOTE)
    return build_archive(spec, store, contents)


def ensure_archives(selected: list[Workload]) -> None:
    """Build the bench-only archive; the served models' archives must come from `make models`."""
    for w in selected:
        if w.bench_only:
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
