"""What the model core reports, and the small interface it reports through.

The core (`handlers/core.py`) knows no runtime: it calls a `Metrics` object, and each adapter
supplies one (TorchServe's: `handlers/metrics.py`, which declares these names in
config/metrics.yaml). Latencies are in seconds.
"""
from __future__ import annotations

from typing import Protocol

PREPROCESS_SECONDS = "handler_preprocess_seconds"
INFERENCE_SECONDS = "handler_inference_seconds"
POSTPROCESS_SECONDS = "handler_postprocess_seconds"
REQUEST_SECONDS = "handler_request_seconds"
BATCH_SIZE = "handler_batch_size"
REJECTED_ITEMS = "handler_rejected_items_total"
FAILED_BATCHES = "handler_failed_batches_total"


class Metrics(Protocol):
    def observe(self, name: str, value: float) -> None:
        """One observation of a histogram (`*_SECONDS`, `BATCH_SIZE`)."""

    def rejected(self, error_type: str) -> None:
        """One item answered with an error (its `type`, or "internal_error")."""

    def failed_batch(self) -> None:
        """A batch whose collate or forward raised (its items are also counted as internal_error)."""


class NoMetrics:
    """For callers that keep no metrics (the bench's peers and limit)."""

    def observe(self, name: str, value: float) -> None:
        pass

    def rejected(self, error_type: str) -> None:
        pass

    def failed_batch(self) -> None:
        pass
