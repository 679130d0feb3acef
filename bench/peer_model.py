"""What every peer runs: the archive's handler, loaded as a TorchServe worker loads it, and one batch
through it. Imports no web framework, so each peer's own venv needs only torch and the handler's needs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from handlers.topk import answer, top_k
from stackctl.inprocess import InProcessModel


def load_handler(archive: Path) -> Any:
    """The archive's handler, initialised as a TorchServe worker would (device, threads, warm-up)."""
    return InProcessModel(archive, gpu_id=0 if torch.cuda.is_available() else None).handler


def predict_batch(handler: Any, samples: list[Any]) -> list[dict[str, Any]]:
    """The answers for decoded samples, run as one batch: collate -> forward -> top-k."""
    with torch.inference_mode(), handler._autocast():
        logits = handler.forward(handler.collate(samples))
    return [answer(handler.name, item) for item in top_k(logits, handler.labels, handler.k)]


def rejection(err: Exception) -> tuple[int, dict[str, Any]] | None:
    """(4xx status, error body) when `err` is the handler's InputError, else None. Matched by shape:
    the handler raises its archive's own copy of `handlers.errors.InputError` (InProcessModel imports
    the archive's packages), a different class from the repository's."""
    code, body = getattr(err, "code", None), getattr(err, "body", None)
    if isinstance(code, int) and 400 <= code < 500 and callable(body):
        return code, body()
    return None
