"""Handler metrics through TorchServe's metrics API (declared in config/metrics.yaml).

Latencies are in seconds: TorchServe's Prometheus histograms use the client's default buckets.
A metric missing from the declaration must not fail a request, so emission errors are logged once.
"""
from __future__ import annotations

import logging
from typing import Any

from ts.metrics.metric_type_enum import MetricTypes

logger = logging.getLogger(__name__)

PREPROCESS_SECONDS = "handler_preprocess_seconds"
INFERENCE_SECONDS = "handler_inference_seconds"
POSTPROCESS_SECONDS = "handler_postprocess_seconds"
REQUEST_SECONDS = "handler_request_seconds"
BATCH_SIZE = "handler_batch_size"
REJECTED_ITEMS = "handler_rejected_items_total"
FAILED_BATCHES = "handler_failed_batches_total"


class HandlerMetrics:
    def __init__(self, model_name: str):
        self.model_name = model_name
        self._warned: set[str] = set()

    def observe(self, context: Any, name: str, value: float) -> None:
        self._emit(context, name, MetricTypes.HISTOGRAM, value, [self.model_name])

    def rejected(self, context: Any, error_type: str) -> None:
        self._emit(context, REJECTED_ITEMS, MetricTypes.COUNTER, 1, [self.model_name, error_type])

    def failed_batch(self, context: Any) -> None:
        """A batch whose collate or forward raised (its items are also counted as internal_error)."""
        self._emit(context, FAILED_BATCHES, MetricTypes.COUNTER, 1, [self.model_name])

    def _emit(self, context: Any, name: str, kind: MetricTypes, value: float, dims: list[str]) -> None:
        cache = getattr(context, "metrics", None)
        if cache is None:
            return
        try:
            cache.get_metric(name, kind).add_or_update(value, dimension_values=dims)
        except Exception as exc:  # a monitoring problem never fails a prediction
            if name not in self._warned:
                self._warned.add(name)
                logger.warning("cannot emit metric %s: %s", name, exc)
