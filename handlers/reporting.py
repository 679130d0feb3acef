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
# Streaming models (handlers/stream_core.py): one state per sequence.
LIVE_SEQUENCES = "handler_live_sequences"                      # gauge, per model and worker
SEQUENCES_STARTED = "handler_sequences_started_total"
SEQUENCES_ENDED = "handler_sequences_ended_total"
SEQUENCES_EXPIRED = "handler_sequences_expired_total"          # freed after the idle time
SEQUENCES_REFUSED = "handler_sequences_refused_total"          # not started: the worker's bound
CHUNK_SECONDS = "handler_chunk_seconds"                        # histogram, by position in the stream
SEQUENCE_COUNTERS = (SEQUENCES_STARTED, SEQUENCES_ENDED, SEQUENCES_EXPIRED, SEQUENCES_REFUSED)


def position_bucket(chunk: int) -> str:
    """The `Position` label of a stream's chunk number (1-based): 1, 2-3, 4-7, 8-15, 16+."""
    if chunk >= 16:
        return "16+"
    low = 1 << (chunk.bit_length() - 1)
    return "1" if low == 1 else f"{low}-{2 * low - 1}"


class Metrics(Protocol):
    def observe(self, name: str, value: float) -> None:
        """One observation of a histogram (`*_SECONDS`, `BATCH_SIZE`)."""

    def rejected(self, error_type: str) -> None:
        """One item answered with an error (its `type`, or "internal_error")."""

    def failed_batch(self) -> None:
        """A batch whose collate or forward raised (its items are also counted as internal_error)."""


class StreamMetrics(Metrics, Protocol):
    def count(self, name: str, amount: int) -> None:
        """A sequence counter (`SEQUENCE_COUNTERS`) goes up by `amount`."""

    def live(self, sequences: int) -> None:
        """The worker's live sequences now (`LIVE_SEQUENCES`)."""

    def chunk(self, seconds: float, position: str) -> None:
        """One answered chunk's time in the worker (`CHUNK_SECONDS`), by `position_bucket`."""


class NoMetrics:
    """For callers that keep no metrics (the bench's peers and limit)."""

    def observe(self, name: str, value: float) -> None:
        pass

    def rejected(self, error_type: str) -> None:
        pass

    def failed_batch(self) -> None:
        pass

    def count(self, name: str, amount: int) -> None:
        pass

    def live(self, sequences: int) -> None:
        pass

    def chunk(self, seconds: float, position: str) -> None:
        pass
