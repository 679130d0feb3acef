"""Model specs (config/models/<name>.yaml): load, validate, and derive what other targets need.

A spec is the single source of truth for one model: how its archive is built, its TorchServe
serving settings, its handler settings, its SLOs and its share of the load test.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stackctl import paths

SERVING_KEYS = {"minWorkers", "maxWorkers", "batchSize", "maxBatchDelay", "responseTimeout",
                "deviceType", "deviceIds", "parallelType", "startupTimeout", "maxSequenceJobQueueSize"}
POSITIVE_SERVING_KEYS = {"maxWorkers", "batchSize", "maxBatchDelay", "responseTimeout", "startupTimeout"}


class SpecError(ValueError):
    """A model spec is missing a key or has a value of the wrong kind."""


@dataclass(frozen=True)
class Slo:
    p95_ms: float
    p99_ms: float
    max_error_ratio: float


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    description: str
    handler_file: Path
    architecture: str
    arguments: dict[str, Any]
    train_module: str | None
    weights: Path | None
    labels: Path | None
    serving: dict[str, Any]
    handler_config: dict[str, Any]
    slo: Slo
    load: dict[str, Any]
    source: Path = field(compare=False)

    @property
    def build_dir(self) -> Path:
        return paths.MODEL_BUILD / self.name

    @property
    def weights_path(self) -> Path:
        return self.weights if self.weights is not None else self.build_dir / "weights.pt"

    @property
    def labels_path(self) -> Path:
        return self.labels if self.labels is not None else self.build_dir / "labels.json"

    @property
    def archive_path(self) -> Path:
        return paths.MODEL_STORE / f"{self.name}.mar"

    @property
    def load_weight(self) -> int:
        return int(self.load.get("weight", 1))

    def model_config(self, extra_handler: dict[str, Any] | None = None) -> dict[str, Any]:
        """The archive's model-config.yaml: TorchServe keys on top, our settings under `handler:`."""
        handler = {"name": self.name, "architecture": self.architecture,
                   "arguments": dict(self.arguments), **self.handler_config}
        handler.update(extra_handler or {})
        return {**self.serving, "handler": handler}


def _require(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    if key not in doc:
        raise SpecError(f"{where}: missing key {key!r}")
    if not isinstance(doc[key], kind):
        raise SpecError(f"{where}: {key!r} must be {kind}, got {type(doc[key]).__name__}")
    return doc[key]


def _optional_path(value: str | None, base: Path) -> Path | None:
    if value is None:
        return None
    p = Path(value)
    return p if p.is_absolute() else (base / p).resolve()


def load_spec(path: Path) -> ModelSpec:
    doc = yaml.safe_load(Path(path).read_text())
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: a spec is a YAML mapping")
    name = _require(doc, "name", str, path)
    if Path(path).stem != name:
        raise SpecError(f"{path}: file name must be <name>.yaml (name is {name!r})")
    model = _require(doc, "model", dict, path)
    serving = _require(doc, "serving", dict, path)
    unknown = set(serving) - SERVING_KEYS
    if unknown:
        raise SpecError(f"{path}: unknown TorchServe serving keys {sorted(unknown)}")
    for key in sorted(POSITIVE_SERVING_KEYS & set(serving)):
        value = serving[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            # maxBatchDelay 0 is the trap: TorchServe 0.12 reads it as "not set" and waits its
            # 100 ms default (measured: p50 120 ms at 1 user against 23 ms at 3 ms; bench/NOTES.md).
            raise SpecError(f"{path}: serving.{key} must be a whole number >= 1, got {value!r}"
                            + (" (0 does not mean 'no wait': TorchServe falls back to its 100 ms default)"
                               if key == "maxBatchDelay" and value == 0 else ""))
    slo = _require(doc, "slo", dict, path)
    handler_file = paths.ROOT / _require(model, "handler", str, path)
    if not handler_file.is_file():
        raise SpecError(f"{path}: handler file {handler_file} does not exist")
    return ModelSpec(
        name=name,
        version=str(_require(doc, "version", (str, int, float), path)),
        description=str(doc.get("description", "")),
        handler_file=handler_file,
        architecture=_require(model, "architecture", str, path),
        arguments=dict(model.get("arguments") or {}),
        train_module=model.get("train"),
        weights=_optional_path(model.get("weights"), paths.ROOT),
        labels=_optional_path(model.get("labels"), paths.ROOT),
        serving=dict(serving),
        handler_config=dict(doc.get("handler") or {}),
        slo=Slo(p95_ms=float(slo["p95_ms"]), p99_ms=float(slo["p99_ms"]),
                max_error_ratio=float(slo["max_error_ratio"])),
        load=dict(doc.get("load") or {}),
        source=Path(path),
    )


def load_specs(spec_dir: Path = paths.SPECS) -> list[ModelSpec]:
    """Every spec under config/models/, sorted by name."""
    return [load_spec(p) for p in sorted(Path(spec_dir).glob("*.yaml"))]


def get_spec(name: str, spec_dir: Path = paths.SPECS) -> ModelSpec:
    path = Path(spec_dir) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(s.name for s in load_specs(spec_dir))
        raise SpecError(f"no spec for model {name!r} (known: {known})")
    return load_spec(path)


def workers_on_host(specs: list[ModelSpec]) -> int:
    """Workers on one host when these models are served together (sizes per-worker thread pools)."""
    return sum(int(s.serving.get("maxWorkers", s.serving.get("minWorkers", 1))) for s in specs)
