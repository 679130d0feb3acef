"""The pod's traffic: one valid request per model through the published inference port, and the
series its metrics port serves."""
from __future__ import annotations

import io
import json
import urllib.error
import urllib.request

from stackctl.catalog.specs import ModelSpec
from stackctl.pod.pod_report import PodRunError


def sample_request(spec: ModelSpec) -> tuple[bytes, str]:
    """One valid request body for a model, by the kind of input its handler settings declare."""
    if "image" in spec.input_kinds:
        from PIL import Image, ImageDraw  # only image models need Pillow
        image = Image.new("L", (28, 28), 255)
        ImageDraw.Draw(image).line([(14, 4), (14, 24)], fill=0, width=3)
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue(), "image/png"
    if "text" in spec.input_kinds:
        return json.dumps({"text": "guten morgen"}).encode(), "application/json"
    raise PodRunError(f"model {spec.name}: its spec declares neither handler.image nor handler.text")


def predict(inference_port: int, spec: ModelSpec, timeout: float = 30) -> int:
    body, content_type = sample_request(spec)
    request = urllib.request.Request(f"http://127.0.0.1:{inference_port}/predictions/{spec.name}", data=body,
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


# The frontend's counters (the HPA's inputs) and a handler histogram: the latter appears only when
# metrics.yaml was found (TS_METRICS_CONFIG, since the pod's working directory is not /app).
SERIES = ("ts_inference_requests_total", "ts_queue_latency_microseconds", "handler_request_seconds_bucket")


def scraped_series(metrics_port: int) -> dict[str, bool]:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as answer:
        text = answer.read().decode("utf-8", "replace")
    return {name: any(line.startswith(name) for line in text.splitlines()) for name in SERIES}
