"""Bench-only TorchServe handler: answers every request of a batch without reading it or running a
model, in the shape the load generator checks. Served at batch 1 with no batch delay it leaves
TorchServe's own cost alone: frontend, queue, worker IPC, response (bench/floor.py).
"""
from __future__ import annotations

from typing import Any


def handle(data: list[Any] | None, context: Any) -> list[dict[str, Any]] | None:
    if data is None:  # TorchServe's initialisation call
        return None
    config = context.model_yaml_config["handler"]
    return [{"model": config["answer_as"], "top_k": config["answer"]} for _ in data]
