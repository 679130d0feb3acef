"""The model core's metrics through TorchServe's metrics API (declared in config/metrics.yaml).

TorchServe's Prometheus histograms use the client's default buckets. A metric missing from the
declaration must not fail a request, so emission errors are logged once.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from ts.metrics.metric_type_enum import MetricTypes

from handlers.reporting import CHUNK_SECONDS, FAILED_BATCHES, LIVE_SEQUENCES, REJECTED_ITEMS

logger = logging.getLogger(__name__)


class HandlerMetrics:
    def __init__(self, model_name: str):
        self.model_name = model_name
        self._warned: set[str] = set()

    def for_batch(self, context: Any) -> BatchMetrics:
        """The `handlers.reporting.Metrics` the core reports one batch through."""
        return BatchMetrics(self, context)

    def emit(self, context: Any, name: str, kind: MetricTypes, value: float, dims: list[str]) -> None:
        cache = getattr(context, "metrics", None)
        if cache is None:
            return
        try:
            cache.get_metric(name, kind).add_or_update(value, dimension_values=dims)
        except Exception as exc:  # a monitoring problem never fails a prediction
            if name not in self._warned:
                self._warned.add(name)
                logger.warning("cannot emit metric %s: %s", name, exc)


class BatchMetrics:
    """`handlers.reporting.Metrics` bound to one batch's TorchServe context."""

    def __init__(self, owner: HandlerMetrics, context: Any):
        self.owner, self.context = owner, context

    def observe(self, name: str, value: float) -> None:
        self.owner.emit(self.context, name, MetricTypes.HISTOGRAM, value, [self.owner.model_name])

    def rejected(self, error_type: str) -> None:
        self.owner.emit(self.context, REJECTED_ITEMS, MetricTypes.COUNTER, 1, [self.owner.model_name, error_type])

    def failed_batch(self) -> None:
        self.owner.emit(self.context, FAILED_BATCHES, MetricTypes.COUNTER, 1, [self.owner.model_name])

    def count(self, name: str, amount: int) -> None:
        if amount:  # an int: the frontend parses "True" as no number and drops the line
            self.owner.emit(self.context, name, MetricTypes.COUNTER, int(amount), [self.owner.model_name])

    def live(self, sequences: int) -> None:
        # Per worker (its process id): each holds its own sequences. A dead worker's series keeps
        # its last value in the frontend's registry, so the alert reads the largest, not the sum.
        self.owner.emit(self.context, LIVE_SEQUENCES, MetricTypes.GAUGE, sequences,
                        [self.owner.model_name, str(os.getpid())])

    def chunk(self, seconds: float, position: str) -> None:
        self.owner.emit(self.context, CHUNK_SECONDS, MetricTypes.HISTOGRAM, seconds, [self.owner.model_name, position])
