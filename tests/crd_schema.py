"""CustomResourceDefinition schemas for the deploy tests: the structural schema of a pinned CRD,
and the fields an object sets that the schema does not declare (what the API server's strict
field validation rejects; jsonschema alone lets unknown fields through)."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import yaml


def load_crd(path: Path) -> dict[str, Any]:
    """A CRD file as copied from its project, plain or gzip-compressed (`.gz`)."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return yaml.safe_load(raw)


def crd_schema(directory: Path, kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of the stored version of the CRD for `kind` among `directory`'s files."""
    for path in sorted(directory.glob("*.yaml*")):
        crd = load_crd(path)
        if crd["spec"]["names"]["kind"] == kind:
            version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
            return version["schema"]["openAPIV3Schema"]
    raise AssertionError(f"no pinned CRD for {kind} in {directory}")


def undeclared_fields(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Fields the structural schema does not declare (what strict field validation rejects)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            if props is not None and key in props:
                found += undeclared_fields(sub, props[key], f"{where}.{key}")
            elif isinstance(extra, dict):
                found += undeclared_fields(sub, extra, f"{where}.{key}")
            elif props is not None and where != ".metadata":
                found.append(f"{where}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += undeclared_fields(item, schema["items"], f"{where}[{i}]")
    return found
