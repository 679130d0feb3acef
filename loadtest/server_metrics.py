"""The server's own view of a load step: the mean batch size TorchServe formed, from /metrics.

A ratio of counters (delta of handler_batch_size_sum / _count), not a percentile.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_SAMPLE = re.compile(r'^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_total(text: str, name: str, labels: dict[str, str]) -> float | None:
    """Sum of every sample of `name` whose labels include `labels` (Prometheus text format)."""
    total, found = 0.0, False
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) != name:
            continue
        have = dict(_LABEL.findall(match.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
            found = True
    return total if found else None


def batch_counters(metrics_url: str | None, model: str) -> tuple[float, float] | None:
    """(sum, count) of the handler_batch_size histogram for `model`, or None if unavailable."""
    if not metrics_url:
        return None
    import urllib.request  # here, not at the top: it imports ssl, which must come after Locust

    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as answer:
            text = answer.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    total = metric_total(text, "handler_batch_size_sum", {"ModelName": model})
    count = metric_total(text, "handler_batch_size_count", {"ModelName": model})
    return None if total is None or count is None else (total, count)


def mean_batch(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def default_metrics_url(host: str) -> str:
    """The inference URL's host on port 8082 (TorchServe's metrics port)."""
    parts = urlsplit(host)
    return urlunsplit((parts.scheme, f"{parts.hostname}:8082", "/metrics", "", ""))


class BatchProbe:
    """The mean batch size over a driver window (driver.Probe)."""

    def __init__(self, metrics_url: str | None, model: str):
        self.metrics_url, self.model = metrics_url, model
        self.before: tuple[float, float] | None = None

    def start(self) -> None:
        self.before = batch_counters(self.metrics_url, self.model)

    def stop(self) -> float | None:
        return mean_batch(self.before, batch_counters(self.metrics_url, self.model))
