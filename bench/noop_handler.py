"""Bench-only TorchServe handler: answers every request of a batch without reading it or running a
model, in the shape the load generator checks. Served at batch 1 with no batch delay it leaves
TorchServe's own cost alone: frontend, queue, worker IPC, response (bench/floor.py).
"""
from __future__ import annotations

from typing import Any


def handle(data: list[Any] | None, context: Any) -> list[dict[str, Any]] | None:
    if data is None:  # TorchServe's initialisation call
        return None
    name = context.model_yaml_config["handler"]["answer_as"]
    return [{"model": name, "top_k": [{"label": "noop", "probability": 1.0}]} for _ in data]
