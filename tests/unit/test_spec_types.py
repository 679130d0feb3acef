"""The typed spec: the JSON Schema and the dataclasses name the same keys, and every default of a
spec key is written once, in its dataclass (handlers.settings, handlers.image_settings,
stackctl.catalog.specs), never again where the key is read."""
from __future__ import annotations

import ast
import inspect
import json
from dataclasses import MISSING
from pathlib import Path
from typing import Any

import pytest

from handlers.image_settings import ImageSettings
from handlers.image_transforms import normalize_ink
from handlers.sections import key_of, override, section_fields, written
from handlers.sequence_settings import SequenceSettings
from handlers.settings import HandlerSettings, ServingSettings, TextSettings
from stackctl import paths
from stackctl.catalog.specs import SCHEMA_FILE, LoadSettings, Slo, all_specs, load_spec

# Schema path (under the spec's top level) -> the dataclass that types it.
SECTIONS: dict[tuple[str, ...], type] = {
    ("serving",): ServingSettings,
    ("handler",): HandlerSettings,
    ("handler", "image"): ImageSettings,
    ("handler", "text"): TextSettings,
    ("load",): LoadSettings,
    ("slo",): Slo,
    ("sequence",): SequenceSettings,
}
# Non-test code that reads specs, archives' configs or handler settings.
PACKAGES = ("handlers", "models", "stackctl", "loadtest", "bench")


def _schema_properties(path: tuple[str, ...]) -> dict[str, Any]:
    node = json.loads(SCHEMA_FILE.read_text())
    for part in path:
        node = node["properties"][part]
    return dict(node["properties"])


def _spec_keys(cls: type) -> set[str]:
    """The keys a spec may write for this section (not the values stackctl adds to an archive's copy)."""
    return {key_of(f) for f in section_fields(cls) if f.metadata.get("spec", True)}


@pytest.mark.parametrize("path", list(SECTIONS), ids=".".join)
def test_schema_and_dataclass_name_the_same_keys(path: tuple[str, ...]) -> None:
    assert set(_schema_properties(path)) == _spec_keys(SECTIONS[path])


def test_the_ink_keys_are_the_ink_functions_parameters() -> None:
    parameters = set(inspect.signature(normalize_ink).parameters) - {"gray", "size"}
    assert set(_schema_properties(("handler", "image", "ink"))) == parameters


def test_every_spec_writes_back_what_it_read() -> None:
    """model_config() is the spec's own keys, in its order: the archive carries nothing else."""
    import yaml
    for source in [*paths.SPECS.glob("*.yaml"), *(paths.ROOT / "bench" / "models").glob("*.yaml")]:
        doc = yaml.safe_load(source.read_text())
        spec = load_spec(source)
        assert written(spec.serving) == doc["serving"]
        assert written(spec.handler) == doc.get("handler", {})
        assert list(written(spec.handler)) == list(doc.get("handler", {}))


def test_an_override_is_written_after_the_keys_the_spec_wrote() -> None:
    spec = all_specs()[0]
    changed = override(spec.serving, batch_size=1, startup_timeout=5)
    assert list(written(changed)) == [*written(spec.serving), "startupTimeout"]
    assert written(changed)["batchSize"] == 1 and changed.workers == spec.serving.workers


def test_max_workers_falls_back_to_min_workers() -> None:
    assert ServingSettings.from_config({"minWorkers": 3}).workers == 3
    assert ServingSettings.from_config({"minWorkers": 3, "maxWorkers": 4}).workers == 4
    assert ServingSettings().workers == ServingSettings().min_workers


def test_serving_defaults_are_what_config_properties_sets() -> None:
    props = dict(line.split("=", 1) for line in (paths.CONFIG / "config.properties").read_text().splitlines()
                 if "=" in line and not line.lstrip().startswith("#"))
    assert ServingSettings().min_workers == int(props["default_workers_per_model"])
    assert ServingSettings().response_timeout == int(props["default_response_timeout"])


def _spec_key_names() -> dict[str, set[str]]:
    """Every spec key (and field name) -> the dataclasses allowed to give it a default."""
    owners: dict[str, set[str]] = {}
    for cls in SECTIONS.values():
        for f in section_fields(cls):
            for name in {f.name, key_of(f)}:
                owners.setdefault(name, set()).add(cls.__name__)
    for name in _schema_properties(("handler", "image", "ink")):
        owners.setdefault(name, set()).add("normalize_ink")
    return owners


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (paths.ROOT / package).rglob("*.py"))


def _is_none(node: ast.expr | None) -> bool:
    return node is None or (isinstance(node, ast.Constant) and node.value is None)


def test_no_spec_key_is_read_with_a_default_of_its_own() -> None:
    """`.get("top_k", 3)`, `.get("maxWorkers", 1)`...: a second default beside the dataclass's."""
    keys = _spec_key_names()
    found = []
    for source in _sources():
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in keys):
                continue
            default = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "default"), None)
            if not _is_none(default):
                found.append(f"{paths.shown(source)}:{node.lineno}: .get({node.args[0].value!r}, ...)")
    assert not found, "spec keys read with their own default (read the typed spec instead):\n" + "\n".join(found)


def _dataclass_defaults(tree: ast.Module) -> list[tuple[str, str, int]]:
    """(class, field, line) for each field with a default in each @dataclass of a module."""
    out = []
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        decorators = [d.func if isinstance(d, ast.Call) else d for d in cls.decorator_list]
        if not any(isinstance(d, ast.Name) and d.id == "dataclass" for d in decorators):
            continue
        for item in cls.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and not _is_none(item.value):
                out.append((cls.name, item.target.id, item.lineno))
    return out


def test_each_spec_default_is_declared_in_one_dataclass() -> None:
    keys = _spec_key_names()
    found = []
    for source in _sources():
        for cls, name, line in _dataclass_defaults(ast.parse(source.read_text(), str(source))):
            if name in keys and name != "given" and cls not in keys[name]:
                found.append(f"{paths.shown(source)}:{line}: {cls}.{name} (the default is {sorted(keys[name])}'s)")
    assert not found, "spec defaults declared again:\n" + "\n".join(found)


def test_each_section_field_has_its_default_once() -> None:
    """Within the sections: a key's default is in the one dataclass of its section (Slo has none)."""
    for path, cls in SECTIONS.items():
        for f in section_fields(cls):
            has_default = f.default is not MISSING or f.default_factory is not MISSING
            assert has_default == (cls is not Slo), f"{'.'.join(path)}.{key_of(f)}"
