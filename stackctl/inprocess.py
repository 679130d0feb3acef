"""Run a model archive's handler in this process, with TorchServe's real Context and metrics cache.

Used by the unit tests (handlers without a server) and by the benchmark's in-process limit
(the same decode -> preprocess -> forward -> postprocess code the server runs, minus the server).
"""
from __future__ import annotations

import importlib
import json
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ts.context import Context, RequestProcessor
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

from stackctl import paths


@dataclass
class Request:
    """One client request. `fields`: a form (multipart or urlencoded) as TorchServe's frontend
    hands it to the worker, {field name: value bytes}, instead of a raw `body`."""

    body: Any
    content_type: str | None = None
    fields: dict[str, bytes] | None = None


def unpack(archive: Path, into: Path | None = None) -> Path:
    target = Path(into or tempfile.mkdtemp(prefix=f"{archive.stem}-"))
    with zipfile.ZipFile(archive) as z:
        z.extractall(target)
    return target


class InProcessModel:
    """A handler initialised from an unpacked archive; `predict` runs one batch like a worker."""

    def __init__(self, archive: Path, gpu_id: int | None = None):
        self.model_dir = unpack(archive)
        self.manifest = json.loads((self.model_dir / "MAR-INF" / "MANIFEST.json").read_text())
        self.name = self.manifest["model"]["modelName"]
        config_name = self.manifest["model"].get("configFile", "model-config.yaml")
        self.model_yaml_config = yaml.safe_load((self.model_dir / config_name).read_text())
        self.metrics = MetricsCacheYamlImpl(str(paths.METRICS_CONFIG))
        self.metrics.initialize_cache()
        self.gpu_id = gpu_id
        handler_module = Path(self.manifest["model"]["handler"]).stem
        # The archive's own copies of handlers/ and models/ are what the server runs; import those.
        sys.path.insert(0, str(self.model_dir))
        for cached in [m for m in sys.modules if m.split(".")[0] in ("handlers", "models")]:
            del sys.modules[cached]
        module = importlib.import_module(handler_module)
        handler_class = next(v for v in vars(module).values()
                             if isinstance(v, type) and v.__module__ == module.__name__)
        self.handler = handler_class()
        self.handler.initialize(self.context(1))

    def context(self, batch_size: int) -> Context:
        ctx = Context(self.name, str(self.model_dir), self.manifest, batch_size, self.gpu_id, "0.12.0",
                      metrics=self.metrics, model_yaml_config=self.model_yaml_config)
        ctx.request_ids = {i: f"req-{i}" for i in range(batch_size)}
        return ctx

    def predict(self, requests: list[Request]) -> list[tuple[int, Any]]:
        """[(status code, answer)] per request, in order — what each HTTP client would get."""
        ctx = self.context(len(requests))
        ctx.request_processor = [RequestProcessor(_headers(r)) for r in requests]
        self.metrics.request_ids = ctx.request_ids
        answers = self.handler.handle([{"body": r.body} if r.fields is None else dict(r.fields) for r in requests], ctx)
        statuses = [ctx.get_response_status(i)[0] or 200 for i in range(len(requests))]
        return list(zip(statuses, answers))


def _headers(request: Request) -> dict[str, Any]:
    """Per-parameter and request headers the way ts.service builds them: form fields carry no
    content type of their own (an empty one), the request's Content-Type is a plain header."""
    if request.fields is None:
        return {"body": {"content-type": request.content_type or "application/octet-stream"}}
    headers: dict[str, Any] = {name: {"content-type": ""} for name in request.fields}
    headers["Content-Type"] = request.content_type
    return headers
