"""The TorchServe adapter: TorchServe's context and request items in, the model core's answers out.

TorchServe calls `initialize(context)` once per worker and `handle(data, context)` per batch.
This class only translates: the archive's settings and TorchServe's properties into a
`handlers.core.ModelCore`, each request item and its headers into a `handlers.inputs.Request`,
and each `Result` into the item's status and content type. Subclasses name their task
(`image_classifier.py`, `text_classifier.py`: the files the specs name as `model.handler`).

A request that the front door marks `X-Inference-Protocol: v2` (its /v2/models/<m>/infer
locations; /predictions never carries it) is an Open Inference Protocol request: read by
`handlers.oip_exchange.Exchange` into the core's `Instances`, answered in v2 with the content type
and `Inference-Header-Content-Length` the response needs (TorchServe 0.12 sends the headers a
handler sets: RestJob.responseInference).
"""
from __future__ import annotations

from http import HTTPStatus
from pathlib import Path
from typing import Any

from ts.torch_handler.base_handler import BaseHandler

from handlers import payload, runtime
from handlers.core import Item, ModelCore
from handlers.inputs import Request
from handlers.metrics import HandlerMetrics
from handlers.oip_contract import HEADER_LENGTH_HEADER, JSON_CONTENT_TYPE, PROTOCOL_HEADER, PROTOCOL_VALUE
from handlers.oip_encoding import ENCODING_HEADER
from handlers.oip_exchange import Exchange, Reply
from handlers.settings import HandlerSettings, ServingSettings


def request_content_type(context: Any, idx: int, item: Any) -> str | None:
    """The Content-Type of request `idx`: per body parameter first, then the HTTP header."""
    if isinstance(item, dict):
        for key in item:
            header = context.get_request_header(idx, key)
            if isinstance(header, dict) and header.get("content-type"):
                return header["content-type"]
    return request_header(context, idx, "Content-Type")


def request_header(context: Any, idx: int, name: str) -> str | None:
    """Request header `name` of request `idx`, spelt as sent or in lower case."""
    for key in (name, name.lower()):
        value = context.get_request_header(idx, key)
        if isinstance(value, str):
            return value
    return None


def core_request(context: Any, idx: int, item: Any) -> Request:
    """TorchServe's item for request `idx` as the core's `Request`.

    TorchServe hands each request to the worker as a dict such as {"body": <value>} (or "data"),
    where <value> is raw bytes when `decode_input_request=false` (our config) and may already be a
    str / dict when a deployment leaves decoding on; a form its frontend split arrives as
    {field name: value}. The front door's X-Original-Content-Type is the client's own label.
    """
    content_type = request_content_type(context, idx, item)
    sent_as = request_header(context, idx, payload.ORIGINAL_CONTENT_TYPE)
    if not isinstance(item, dict):
        return Request(item, content_type, sent_as=sent_as)
    body = next((item[key] for key in ("body", "data") if item.get(key) is not None), None)
    return Request(body, content_type, fields=item, sent_as=sent_as)


def speaks_oip(context: Any, idx: int) -> bool:
    """Whether request `idx` came through the front door's v2 infer location."""
    return (request_header(context, idx, PROTOCOL_HEADER) or "").strip().lower() == PROTOCOL_VALUE


def oip_body(item: Any) -> Any:
    """The raw body of a v2 request (TorchServe's {"body": ...}); a form its frontend split is no
    v2 body, so it is handed on as None (refused as empty)."""
    if not isinstance(item, dict):
        return item
    return next((item[key] for key in ("body", "data") if item.get(key) is not None), None)


class ClassifierHandler(BaseHandler):
    """Base for our classifiers; a subclass sets `task` (handlers.image_task / handlers.text_task)."""

    task: Any = None

    def initialize(self, context: Any) -> None:
        properties = context.system_properties
        self.model_yaml_config = getattr(context, "model_yaml_config", None) or {}
        settings = HandlerSettings.from_config(dict(self.model_yaml_config.get("handler") or {}))
        self.manifest = context.manifest
        name = settings.name or self.manifest["model"]["modelName"]
        model_dir = Path(properties["model_dir"])
        self.core = ModelCore.load(self.task, settings, model_dir, model_dir / self.manifest["model"]["serializedFile"],
                                   name, runtime.select_device(properties),
                                   batch_size=int(properties.get("batch_size") or 1),
                                   own_workers=ServingSettings.from_config(self.model_yaml_config).workers)
        self.handler_metrics = HandlerMetrics(name)
        # The v2 answer's model_version: the archive's (TorchServe serves each version's own archive).
        self.version = str(self.manifest["model"].get("modelVersion") or "")
        self.initialized = True

    def handle(self, data: list[Any], context: Any) -> list[Any]:
        exchanges = {idx: Exchange(oip_body(item), request_header(context, idx, HEADER_LENGTH_HEADER),
                                   self.core.task.accepts.kind, self.core.k,
                                   request_header(context, idx, ENCODING_HEADER))
                     for idx, item in enumerate(data) if speaks_oip(context, idx)}
        requests: list[Item] = [exchanges[idx].item if idx in exchanges else core_request(context, idx, item)
                                for idx, item in enumerate(data)]
        ids = [context.get_request_id(idx) for idx in range(len(data))]
        results = self.core.answer(requests, ids, self.handler_metrics.for_batch(context))
        replies = [exchanges[idx].reply(result, self.core.name, self.version) if idx in exchanges
                   else Reply(result.status, result.body, JSON_CONTENT_TYPE)
                   for idx, result in enumerate(results)]
        for idx, reply in enumerate(replies):
            if reply.status != 200:
                context.set_response_status(reply.status, HTTPStatus(reply.status).phrase, idx)
            context.set_response_content_type(idx, reply.content_type)
            for name, value in reply.headers.items():
                context.set_response_header(idx, name, value)
        return [reply.body for reply in replies]
