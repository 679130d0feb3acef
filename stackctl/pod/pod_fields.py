"""The values a kubelet computes for a container before it starts: resource quantities, $(VAR)
expansion, and the env of a container (literal values, downward-API fieldRef and resourceFieldRef).

Part of the pod-spec -> `docker run` translation (stackctl/pod/pod_translate.py holds the whole mapping).
"""
from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any


class TranslationError(ValueError):
    """The pod spec asks for something this translation cannot do faithfully."""


_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
    "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18), "Ki": Decimal(2**10), "Mi": Decimal(2**20),
    "Gi": Decimal(2**30), "Ti": Decimal(2**40), "Pi": Decimal(2**50), "Ei": Decimal(2**60)}


def quantity(value: str | float) -> Decimal:
    """A Kubernetes resource quantity ("500m", "4Gi", "2", "1e3") as a number."""
    m = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?", str(value).strip())
    if not m:
        raise TranslationError(f"not a Kubernetes quantity: {value!r}")
    return Decimal(m.group(1)) * _SUFFIX[m.group(2) or ""]


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion: defined names are replaced, undefined ones stay as written,
    and $$ escapes a dollar."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR_REF.sub(sub, value)


def field_value(path: str, pod: dict[str, Any]) -> str:
    """A downward-API fieldRef, for the values that exist before the container runs."""
    meta = pod["metadata"]
    simple = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
              "metadata.uid": meta["uid"], "spec.nodeName": pod["nodeName"],
              "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default")}
    if path in simple:
        return str(simple[path])
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        values = meta.get(m.group(1)) or {}
        if m.group(2) not in values:
            raise TranslationError(f"fieldRef {path}: the pod has no such {m.group(1)[:-1]}")
        return str(values[m.group(2)])
    raise TranslationError(f"fieldRef {path} has no value before the pod sandbox exists "
                           "(status.* is set by the kubelet at run time); not translatable")


def resource_value(ref: dict[str, Any], resources: dict[str, Any]) -> str:
    """A resourceFieldRef: the container's request/limit divided by the divisor, rounded up."""
    kind, _, name = ref["resource"].partition(".")
    amount = (resources.get(kind) or {}).get(name)
    if amount is None:
        # The kubelet would fall back to the node's allocatable, which a container has no equal of.
        raise TranslationError(f"resourceFieldRef {ref['resource']}: the container sets no {ref['resource']}")
    divisor = quantity(ref.get("divisor", "1"))
    return str(math.ceil(quantity(amount) / divisor))


def environment(container: dict[str, Any], pod: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in container.get("envFrom") or []:
        raise TranslationError(f"envFrom ({entry}) is not translated")
    for entry in container.get("env") or []:
        name = entry["name"]
        if "value" in entry:
            env[name] = expand(str(entry["value"]), env)
            continue
        source = entry.get("valueFrom") or {}
        if "fieldRef" in source:
            env[name] = field_value(source["fieldRef"]["fieldPath"], pod)
        elif "resourceFieldRef" in source:
            env[name] = resource_value(source["resourceFieldRef"], container.get("resources") or {})
        elif source:
            raise TranslationError(f"env {name}: valueFrom {sorted(source)} is not translated")
        else:
            env[name] = ""
    return env
