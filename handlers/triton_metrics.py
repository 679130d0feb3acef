"""The model core's metrics through the Triton Python backend's own Prometheus metrics.

The same names and kinds TorchServe exports (`handlers/reporting.py`, config/metrics.yaml), on
Triton's metrics port beside its `nv_inference_*`, with TorchServe's label names (`ModelName`,
`ErrorType`) so the recording rules and the dashboard read both runtimes, and a `runtime` label
("triton") that tells them apart. Measured on 2.51 (docs/triton.md): `pb_utils.MetricFamily`
takes COUNTER, GAUGE and HISTOGRAM; a histogram's buckets go to `Metric(...)`, not the family;
a family must outlive its metrics (a collected family fails every later increment), so this
object keeps both.
"""
from __future__ import annotations

import logging
from typing import Any

import triton_python_backend_utils as pb_utils  # the Python backend's module, only inside its stub

from handlers.reporting import (
    BATCH_SIZE,
    FAILED_BATCHES,
    INFERENCE_SECONDS,
    POSTPROCESS_SECONDS,
    PREPROCESS_SECONDS,
    REJECTED_ITEMS,
    REQUEST_SECONDS,
)

logger = logging.getLogger(__name__)

RUNTIME = "triton"
# prometheus_client's default buckets: what TorchServe's histograms use (handlers/metrics.py).
BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]
HISTOGRAMS = (PREPROCESS_SECONDS, INFERENCE_SECONDS, POSTPROCESS_SECONDS, REQUEST_SECONDS, BATCH_SIZE)


class TritonMetrics:
    """`handlers.reporting.Metrics` for one model instance. Triton aggregates the series of a
    model's instances (same labels) into one, as TorchServe's frontend does for its workers."""

    def __init__(self, model_name: str):
        self.labels = {"ModelName": model_name, "runtime": RUNTIME}
        kind = pb_utils.MetricFamily
        self.families = {name: kind(name=name, description=f"{name} (model core)", kind=kind.HISTOGRAM)
                         for name in HISTOGRAMS}
        self.families[REJECTED_ITEMS] = kind(name=REJECTED_ITEMS, description="items answered with an error",
                                             kind=kind.COUNTER)
        self.families[FAILED_BATCHES] = kind(name=FAILED_BATCHES, description="batches whose forward pass raised",
                                             kind=kind.COUNTER)
        self.histograms = {name: self.families[name].Metric(labels=self.labels, buckets=BUCKETS)
                           for name in HISTOGRAMS}
        self.failed = self.families[FAILED_BATCHES].Metric(labels=self.labels)
        self.rejections: dict[str, Any] = {}

    def observe(self, name: str, value: float) -> None:
        self.safely(lambda: self.histograms[name].observe(value), name)

    def rejected(self, error_type: str) -> None:
        def count() -> None:
            if error_type not in self.rejections:
                self.rejections[error_type] = self.families[REJECTED_ITEMS].Metric(
                    labels={**self.labels, "ErrorType": error_type})
            self.rejections[error_type].increment(1)
        self.safely(count, REJECTED_ITEMS)

    def failed_batch(self) -> None:
        self.safely(lambda: self.failed.increment(1), FAILED_BATCHES)

    @staticmethod
    def safely(emit: Any, name: str) -> None:
        try:  # a monitoring problem never fails a prediction
            emit()
        except Exception as exc:  # noqa: BLE001
            logger.warning("cannot emit metric %s: %s", name, exc)
