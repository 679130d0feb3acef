"""Typed sections of a model spec and of the archive's model-config.yaml, read and written one way.

A section is a frozen dataclass: each field is one key with its default, written once there. A
field's key is its name unless its metadata names another (`key`: TorchServe's camelCase). The
keys a file wrote are kept in `given`, in the file's order, so that writing a section back
(`written`) gives exactly what was read: the archive's model-config.yaml carries only what the
spec says, never our defaults (TorchServe applies its own). `override` changes fields the
dataclasses.replace way and records them as written.
"""
from __future__ import annotations

from dataclasses import Field, fields, is_dataclass, replace
from typing import Any, TypeVar

Config = dict[str, Any]
S = TypeVar("S")
GIVEN = "given"


def key_of(f: Field) -> str:
    """The key a field is written under."""
    return str(f.metadata.get("key", f.name))


def section_fields(cls: type) -> list[Field]:
    """The fields that are keys of the section (not `given`, not values stackctl adds)."""
    return [f for f in fields(cls) if f.name != GIVEN]


def read(cls: type[S], cfg: Config | None, what: str, **converted: Any) -> S:
    """`cls` from a mapping of keys; an unknown key is an error, never silently dropped.
    `converted` are values (by key) the caller has already turned into their typed form."""
    values = dict(cfg or {})
    names = {key_of(f): f.name for f in section_fields(cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"unknown {what}: {sorted(unknown)}")
    typed = {names[k]: converted.get(k, v) for k, v in values.items()}
    return cls(**typed, **{GIVEN: tuple(values)})


def written(section: Any) -> Config:
    """The keys the section was read with (and overridden), in order, as plain YAML values."""
    by_key = {key_of(f): f.name for f in section_fields(type(section))}
    return {k: _plain(getattr(section, by_key[k])) for k in getattr(section, GIVEN)}


def override(section: S, **changes: Any) -> S:
    """`section` with fields (by name) changed, the changed keys written after the ones it has."""
    by_name = {f.name: key_of(f) for f in section_fields(type(section))}
    given = tuple(getattr(section, GIVEN))
    added = tuple(by_name[n] for n in changes if by_name[n] not in given)
    return replace(section, **changes, **{GIVEN: given + added})  # type: ignore[type-var]


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return written(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
