"""Model specs (config/models/<name>.yaml): load, validate, and derive what other targets need.

A spec is the single source of truth for one model: how its archive is built, its TorchServe
serving settings, its handler settings, its SLOs and its share of the load test. Its shape is the
JSON Schema in model_spec.schema.json (every key we own, nothing else); what a schema cannot say
(the file name, the handler file, p95 <= p99) is checked here; the files it names and the model
itself are checked by stackctl.catalog.model_check before archives are written.

Each section is typed, with its defaults written once: `serving:` and `handler:` by the classes
the workers read from their archive (handlers.settings: ServingSettings, HandlerSettings), `load:`
and `slo:` here. Everyone reads the typed spec; tests/unit/test_spec_types.py checks that the
schema and the classes name the same keys and that no reader writes a default of its own.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from handlers.sections import read, written
from handlers.sequence_settings import SequenceSettings
from handlers.settings import HandlerSettings, ServingSettings
from stackctl import paths
from stackctl.catalog.versions import SEPARATOR as VERSION_SEPARATOR  # <name>@<version>.yaml: another version

SCHEMA_FILE = Path(__file__).with_name("model_spec.schema.json")


class SpecError(ValueError):
    """A spec, or a file it names, is not what it must be: one line, `<file>: <key>: <expected>`."""


@dataclass(frozen=True)
class Slo:
    """The `slo:` section: every key is required, so none has a default."""

    p95_ms: float
    p99_ms: float
    max_error_ratio: float


@dataclass(frozen=True)
class LoadSettings:
    """The `load:` section: the model's part in the load test (loadtest/) and the bench."""

    weight: int = 1                                   # its share of the load test's users
    samples: str | None = None                        # a folder of sample inputs
    # Image sides (a list, or a mapping side -> weight); None: what the preprocessing ends at and
    # twice it (loadtest.payloads.default_image_sizes follows the handler's settings).
    image_sizes: tuple[int, ...] | dict[int, float] | None = None
    image_formats: tuple[str, ...] = ("png", "jpeg")
    # Rows {words: [lo, hi], share: s}; None: the load test's mix (loadtest.payloads).
    text_words: tuple[dict[str, Any], ...] | None = None
    given: tuple[str, ...] = field(default=(), repr=False)  # the keys the file wrote (handlers.sections)

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> LoadSettings:
        cfg = dict(cfg or {})
        lists = {k: tuple(cfg[k]) for k in ("image_sizes", "image_formats", "text_words")
                 if isinstance(cfg.get(k), list)}
        return read(cls, cfg, "load settings", **lists)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    description: str
    handler_file: Path
    architecture: str | None      # None for a torch.export program (.pt2)
    arguments: dict[str, Any]
    train_module: str | None
    weights: Path | None
    labels: Path | None
    serving: ServingSettings
    handler: HandlerSettings
    slo: Slo
    load: LoadSettings
    source: Path = field(compare=False)
    sequence: SequenceSettings | None = None  # a streaming model's `sequence:` section
    extra_files: tuple[Path, ...] = ()

    @property
    def key(self) -> str:
        """`name` for the default version (<name>.yaml), `name@version` for another one."""
        return self.source.stem

    @property
    def is_default(self) -> bool:
        """<name>.yaml is the version served at /predictions/<name>; <name>@<version>.yaml are others."""
        return self.key == self.name

    @property
    def build_dir(self) -> Path:
        return paths.MODEL_BUILD / self.key

    @property
    def weights_path(self) -> Path:
        return self.weights if self.weights is not None else self.build_dir / "weights.pt"

    @property
    def labels_path(self) -> Path:
        return self.labels if self.labels is not None else self.build_dir / "labels.json"

    @property
    def exported(self) -> bool:
        """A torch.export program: graph and weights in one file, no model class."""
        return self.weights_path.suffix == ".pt2"

    @property
    def archive_path(self) -> Path:
        return paths.MODEL_STORE / f"{self.key}.mar"

    @property
    def input_kinds(self) -> tuple[str, ...]:
        """The input sections the spec's handler settings write ("image", "text"): what it takes."""
        return tuple(kind for kind in ("image", "text") if kind in self.handler.given)

    @property
    def load_weight(self) -> int:
        return self.load.weight

    def model_config(self, extra_handler: dict[str, Any] | None = None) -> dict[str, Any]:
        """The archive's model-config.yaml: TorchServe keys on top, our settings under `handler:`;
        only the keys the spec wrote (TorchServe and the handlers apply the defaults)."""
        handler = {"name": self.name, "architecture": self.architecture,
                   "arguments": dict(self.arguments), **written(self.handler)}
        handler.update(extra_handler or {})
        if self.sequence is None:
            return {**written(self.serving), "handler": handler}
        handler["sequence"] = written(self.sequence)
        return {**written(self.serving), **self.sequence.torchserve_keys(self.serving.workers), "handler": handler}


def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


def _described(schema: dict[str, Any], where: list[str | int]) -> str:
    """The schema's description of the key at `where`, to say what is expected."""
    node: Any = schema
    for part in where:
        props = node.get("properties", {}) if isinstance(node, dict) else {}
        node = props.get(part) if isinstance(part, str) else node.get("items")
        if not isinstance(node, dict):
            return ""
    return str(node.get("description", ""))


def schema_error_line(source: Path, error: jsonschema.ValidationError, schema: dict[str, Any]) -> str:
    """One line: the spec file, the key (dotted) and what is expected there."""
    where = list(error.absolute_path)
    instance = error.instance
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(instance) - set(known))
        where.append(unknown[0])
        expected = "unknown key; expected one of " + ", ".join(known)
    elif error.validator == "required":
        where.append(next(k for k in error.validator_value if k not in instance))
        expected = "missing; it is required" + (f" ({d})" if (d := _described(schema, where)) else "")
    elif error.validator == "not":
        present = [k for k in ("architecture", "arguments", "train") if k in instance]
        where.append(present[0] if present else "")
        expected = "not allowed with a .pt2 program, which carries its own code (drop architecture, arguments, train)"
    else:
        expected = f"{error.message}"
        described = _described(schema, where)
        if described:
            expected += f" ({described})"
    key = ".".join(str(p) for p in where) or "(the file)"
    return f"{source}: {key}: {expected}"


def validate_document(doc: Any, source: Path) -> None:
    """Raise SpecError with one line for the most relevant schema violation of `doc`."""
    schema = _schema()
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        raise SpecError(schema_error_line(source, error, schema))


def _data_path(value: str | None, base: Path) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def load_spec(path: Path) -> ModelSpec:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: (the file): not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: (the file): a spec is a YAML mapping")
    validate_document(doc, path)
    name, version = doc["name"], str(doc["version"])
    if path.stem not in (name, f"{name}{VERSION_SEPARATOR}{version}"):
        raise SpecError(f"{path}: name: the file must be {name}.yaml (the default version) or "
                        f"{name}{VERSION_SEPARATOR}{version}.yaml (another version); name is {name!r}")
    model = doc["model"]
    handler_file = paths.ROOT / model["handler"]
    if not handler_file.is_file():
        raise SpecError(f"{path}: model.handler: {handler_file} does not exist")
    slo = doc["slo"]
    if slo["p95_ms"] > slo["p99_ms"]:
        raise SpecError(f"{path}: slo.p95_ms: must not exceed slo.p99_ms ({slo['p95_ms']} > {slo['p99_ms']})")
    sequence = doc.get("sequence")
    if sequence is not None:
        _check_sequence_bound(path, SequenceSettings.from_config(sequence), ServingSettings.from_config(doc["serving"]))
    # Relative data paths: a trained model's files are in its build folder (training writes them
    # there); a brought model's are in $MODEL_DATA, else the repository.
    key = path.stem
    base = paths.MODEL_BUILD / key if model.get("train") else paths.model_data()
    return ModelSpec(
        name=name,
        version=version,
        description=str(doc.get("description", "")),
        handler_file=handler_file,
        architecture=model.get("architecture"),
        arguments=dict(model.get("arguments") or {}),
        train_module=model.get("train"),
        weights=_data_path(model.get("weights"), base),
        labels=_data_path(model.get("labels"), base),
        serving=ServingSettings.from_config(doc["serving"]),
        handler=HandlerSettings.from_config(doc.get("handler")),
        slo=Slo(p95_ms=float(slo["p95_ms"]), p99_ms=float(slo["p99_ms"]),
                max_error_ratio=float(slo["max_error_ratio"])),
        load=LoadSettings.from_config(doc.get("load")),
        source=path,
        sequence=SequenceSettings.from_config(doc["sequence"]) if "sequence" in doc else None,
        extra_files=tuple(p for p in (_data_path(f, base) for f in model.get("extra_files", [])) if p),
    )


def _check_sequence_bound(path: Path, sequence: SequenceSettings, serving: ServingSettings) -> None:
    """TorchServe 0.12 waits for each live sequence's next chunk on one of a worker's batchSize + 1
    threads; a bound at or above batchSize leaves none for new, ending or refused sequences, which
    then wait instead of getting their answer or 429 (docs/streaming.md)."""
    if sequence.max_live_per_worker >= serving.batch_size:
        raise SpecError(f"{path}: sequence.max_live_per_worker: must be below serving.batchSize "
                        f"({sequence.max_live_per_worker} >= {serving.batch_size}): TorchServe polls each live "
                        "sequence on one of a worker's batchSize + 1 threads")


def _spec_dir(spec_dir: Path | None) -> Path:
    return Path(spec_dir) if spec_dir is not None else paths.SPECS


def all_specs(spec_dir: Path | None = None) -> list[ModelSpec]:
    """Every spec file, other versions (<name>@<version>.yaml) included: what is archived and served."""
    specs = [load_spec(p) for p in sorted(_spec_dir(spec_dir).glob("*.yaml"))]
    defaults = {s.name for s in specs if s.is_default}
    for spec in specs:
        if spec.name not in defaults:
            raise SpecError(f"{spec.source}: name: {spec.name}{VERSION_SEPARATOR}<version>.yaml needs "
                            f"{spec.name}.yaml beside it (the default version)")
    return specs


def load_specs(spec_dir: Path | None = None) -> list[ModelSpec]:
    """One spec per model, its default version (<name>.yaml), sorted by name: what alerts, load
    tests and dashboards are about (they follow the model, whichever version answers)."""
    return [s for s in all_specs(spec_dir) if s.is_default]


def get_spec(name: str, spec_dir: Path | None = None) -> ModelSpec:
    path = _spec_dir(spec_dir) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(s.key for s in all_specs(spec_dir))
        raise SpecError(f"no spec for model {name!r} (known: {known})")
    return load_spec(path)


def workers_on_host(specs: list[ModelSpec]) -> int:
    """Workers on one host when these models are served together (sizes per-worker thread pools)."""
    return sum(s.serving.workers for s in specs)
