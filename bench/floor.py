"""TorchServe's low-load latency, measured: the frontend hop alone (a no-op handler at batch 1) and
where one request's time goes at 1 user, from the server's own metrics and the handler histograms.

* the floor: `noop_variant` serves bench/noop_handler.py under the workload's archive, batchSize 1,
  maxBatchDelay 0: its latency at 1 user is what TorchServe costs with no model at all;
* the breakdown: counters read from TorchServe's /metrics before and after a 1-user step on the
  model itself (means per request, not percentiles):
  - client: the load generator's p50 latency (Locust's percentiles; the server counters give means);
  - frontend total: ts_inference_latency_microseconds (request in -> response out, in the frontend);
  - queue wait: ts_queue_latency_microseconds (job queue until a worker thread takes it);
  - handler: handler_request_seconds (the worker's own time for the request's batch);
  - rest of the frontend: frontend total - queue - handler: the batch window (maxBatchDelay), the
    frontend <-> worker socket (IPC, serialisation) and the frontend's own code;
  - outside the frontend: client - frontend total: the client, loopback HTTP, connection handling.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from handlers.sections import override, written
from handlers.settings import ServingSettings
from loadtest.checks import answer_shape
from loadtest.server_metrics import metric_total
from stackctl.catalog.archive import write_variant
from stackctl.catalog.specs import ModelSpec

NOOP_HANDLER = Path(__file__).with_name("noop_handler.py")


def noop_answer(spec: ModelSpec) -> list[dict[str, Any]]:
    """A fixed top_k in the model's own shape (its labels, its top_k), so the load generator's answer
    check holds the no-op handler to the same contract as the model."""
    shape = answer_shape(spec)
    labels = sorted(shape.labels) if shape.labels else ["noop"]
    count = shape.top_k or 1
    return [{"label": label, "probability": round(1.0 / (i + 1), 4)} for i, label in enumerate(labels[:count])]


def noop_variant(spec: ModelSpec, archive: Path, store: Path, name: str) -> Path:
    """store/<name>-noop.mar: the workload's archive answering through the no-op handler, batch 1, no delay."""
    serving = override(ServingSettings(), batch_size=1, max_batch_delay=0, min_workers=1, max_workers=1)
    return write_variant(archive, store, f"{name}-noop", written(serving),
                         {"answer_as": name, "answer": noop_answer(spec)}, entry=NOOP_HANDLER)


def counters(metrics_url: str, model: str) -> dict[str, float]:
    """The counters the breakdown needs, for `model`, as TorchServe reports them now."""
    import urllib.request  # here, not at the top: it imports ssl, which must come after Locust

    with urllib.request.urlopen(f"{metrics_url}/metrics", timeout=5) as answer:  # noqa: S310 (loopback)
        text = answer.read().decode("utf-8", errors="replace")
    ts, handler = {"model_name": model}, {"ModelName": model}
    wanted = {"requests": ("ts_inference_requests_total", ts), "frontend_us": ("ts_inference_latency_microseconds", ts),
              "queue_us": ("ts_queue_latency_microseconds", ts),
              "handler_s": ("handler_request_seconds_sum", handler), "handled": ("handler_request_seconds_count", handler)}
    return {key: metric_total(text, name, labels) or 0.0 for key, (name, labels) in wanted.items()}


def breakdown(before: dict[str, float], after: dict[str, float], client_p50_ms: float | None) -> dict[str, Any]:
    """Mean ms per request over a step, from the counters before and after it."""
    d = {k: after[k] - before[k] for k in after}
    if not d["requests"]:
        return {}
    frontend = d["frontend_us"] / d["requests"] / 1000
    queue = d["queue_us"] / d["requests"] / 1000
    handler = d["handler_s"] / d["handled"] * 1000 if d["handled"] else 0.0
    out = {"requests": int(d["requests"]), "client p50 ms": client_p50_ms, "frontend total ms": round(frontend, 2),
           "queue wait ms": round(queue, 2), "handler ms": round(handler, 2),
           "batch window + worker IPC + frontend code ms": round(frontend - queue - handler, 2)}
    if client_p50_ms is not None:  # Locust gives percentiles; the server's counters give means
        out["outside the frontend (client, loopback HTTP; p50 - mean) ms"] = round(client_p50_ms - frontend, 2)
    return out
