"""Run a model archive's handler in this process, with TorchServe's real Context and metrics cache.

Used by the unit tests (handlers without a server) and by the benchmark's in-process limit
(the same decode -> preprocess -> forward -> postprocess code the server runs, minus the server).
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from ts.context import Context, RequestProcessor
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

from stackctl import paths
from stackctl.catalog.archive import ARCHIVE_PACKAGES
from stackctl.catalog.archive_files import read_config, read_manifest, unpack


@dataclass
class Request:
    """One client request: a body and its Content-Type, as a client sends it, and any other
    headers the worker sees (the front door's X-Inference-Protocol on /v2 infer requests...)."""

    body: Any
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Response:
    """One answer as the worker gives it: status, body (bytes, or the JSON document TorchServe
    serialises) and the response headers the handler set (content-type among them)."""

    status: int
    body: Any
    headers: dict[str, str]


class InProcessModel:
    """A handler initialised from an unpacked archive; `predict` runs one batch like a worker."""

    def __init__(self, archive: Path, gpu_id: int | None = None):
        self.model_dir = unpack(archive)
        self.manifest = read_manifest(archive)
        self.name = self.manifest["model"]["modelName"]
        self.model_yaml_config = read_config(archive)
        self.metrics = MetricsCacheYamlImpl(str(paths.METRICS_CONFIG))
        self.metrics.initialize_cache()
        self.gpu_id = gpu_id
        handler_module = Path(self.manifest["model"]["handler"]).stem
        # The archive's own copies of handlers/ and models/ are what the server runs; import those,
        # then put the repository's back, so that later imports in the same process (other tests)
        # get the repository's modules, not a temporary folder's. The handler keeps its own.
        ours = {m: sys.modules.pop(m) for m in list(sys.modules) if m.split(".")[0] in ARCHIVE_PACKAGES}
        sys.path.insert(0, str(self.model_dir))
        try:
            module = importlib.import_module(handler_module)
            handler_class = next(v for v in vars(module).values()
                                 if isinstance(v, type) and v.__module__ == module.__name__)
            self.handler = handler_class()
            self.handler.initialize(self.context(1))
        finally:
            sys.path.remove(str(self.model_dir))
            for name in [m for m in sys.modules if m.split(".")[0] in ARCHIVE_PACKAGES]:
                del sys.modules[name]
            sys.modules.update(ours)

    def context(self, batch_size: int) -> Context:
        ctx = Context(self.name, str(self.model_dir), self.manifest, batch_size, self.gpu_id, "0.12.0",
                      metrics=self.metrics, model_yaml_config=self.model_yaml_config)
        ctx.request_ids = {i: f"req-{i}" for i in range(batch_size)}
        return ctx

    def predict(self, requests: list[Request], front_door: bool = True) -> list[tuple[int, Any]]:
        """[(status code, answer)] per request, in order — what each HTTP client would get through
        the front door (as served), or from TorchServe alone with `front_door=False`."""
        return [(response.status, response.body) for response in self.respond(requests, front_door)]

    def respond(self, requests: list[Request], front_door: bool = True) -> list[Response]:
        """`predict` with each answer's response headers: one batch, as a worker runs it."""
        ctx = self.context(len(requests))
        items = [worker_item(r, front_door) for r in requests]
        ctx.request_processor = [RequestProcessor(headers) for _, headers in items]
        self.metrics.request_ids = ctx.request_ids
        answers = self.handler.handle([item for item, _ in items], ctx)
        return [Response(ctx.get_response_status(i)[0] or 200, answer, dict(ctx.get_response_headers(i)))
                for i, answer in enumerate(answers)]


def worker_item(request: Request, front_door: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """(item, headers) as TorchServe 0.12 hands a request to the worker (ts.service).

    A raw body is {"body": bytes}. Form bodies are split into fields by the frontend first
    (InferenceRequestHandler.parseRequest, with Netty's HttpPostRequestDecoder): one entry per
    field; a text field has no content type of its own, a file part has its part's type. The
    front door (config/front-door.conf.template) passes form-urlencoded bodies on as
    application/octet-stream with the client's type in X-Original-Content-Type, so those arrive raw.
    """
    item, headers = worker_body(request, front_door)
    return item, {**headers, **request.headers}


def worker_body(request: Request, front_door: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """`worker_item` for the body and its content type alone."""
    media = (request.content_type or "").split(";", 1)[0].strip().lower()
    if front_door and media == "application/x-www-form-urlencoded":
        return {"body": request.body}, {"body": {"content-type": "application/octet-stream"},
                                        "Content-Type": "application/octet-stream",
                                        "X-Original-Content-Type": request.content_type}
    if media == "application/x-www-form-urlencoded" and isinstance(request.body, (bytes, bytearray)):
        fields = [(name, value, "") for name, value in urlencoded_fields(bytes(request.body))]
    elif media == "multipart/form-data" and isinstance(request.body, (bytes, bytearray)):
        fields = multipart_fields(bytes(request.body), request.content_type or "")
    else:
        return {"body": request.body}, {"body": {"content-type": request.content_type or "application/octet-stream"}}
    headers: dict[str, Any] = {name: {"content-type": ctype} for name, _, ctype in fields}
    headers["Content-Type"] = request.content_type
    return {name: value for name, value, _ in fields}, headers


def urlencoded_fields(body: bytes) -> list[tuple[str, bytes]]:
    """Netty's reading of a form-urlencoded body (checked against the jar TorchServe 0.12 ships):
    "a=b&c" gives a -> "b"; a part without "=" is a field with an empty value when an "&"
    follows it and is dropped at the end of the body; "+" and %XX are decoded."""
    parts = body.decode("utf-8", "replace").split("&")
    fields = []
    for index, part in enumerate(parts):
        name, equals, value = part.partition("=")
        if not equals and index == len(parts) - 1:
            break
        if name:
            fields.append((unquote_plus(name).strip(), unquote_plus(value).encode()))
    return fields


def multipart_fields(body: bytes, content_type: str) -> list[tuple[str, bytes, str]]:
    """(name, value, part content type if it is a file upload) for each part of a multipart body."""
    message = BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields: list[tuple[str, bytes, str]] = []
    parts: list[Message] = message.get_payload() if message.is_multipart() else []  # type: ignore[assignment]
    for part in parts:
        name = part.get_param("name", header="content-disposition")
        filename = part.get_param("filename", header="content-disposition")
        value = part.get_payload(decode=True)
        fields.append((str(name), value if isinstance(value, bytes) else b"",
                       part.get_content_type() if filename else ""))
    return fields
