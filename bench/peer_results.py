"""The peers of one workload's round, read the same way by the report and the pictures
(its own module so that bench.report and bench.plot need not import each other)."""
from __future__ import annotations

from typing import Any


def peers_of(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every peer of one workload's round; results before the fair peers had one FastAPI process."""
    if "peers" in r:
        return r["peers"]
    return {"fastapi": {"label": "FastAPI peer", "processes": 1, "batching": None, **r["peer"]}}
