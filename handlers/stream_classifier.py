"""TorchServe entry point for streaming text classification (langstream): the thin adapter over
handlers/stream_core.py, in the manner of handlers/base.py.

TorchServe 0.12's sequence batching (the archive's `sequenceBatching: true`, from the spec's
`sequence:` section) names each request's sequence in the header `ts_request_sequence_id` (a request
without one gets a generated `ts-seq-<uuid>` and the start flag), routes every request of a sequence
to one worker, and puts at most one request per sequence in a batch. The start and end flags are
the headers `ts_request_sequence_start` / `_end` ("true"). An Open Inference Protocol request may
carry them as Triton's clients do, as the request parameters `sequence_id`, `sequence_start`,
`sequence_end`; its id must be the one TorchServe routed it by (the header, which the front door or
gateway sets from it). Every answer carries the sequence id back in `ts_request_sequence_id`. A
request that names no sequence is answered as a whole text and kept by nobody.
"""
from __future__ import annotations

import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Any

from ts.torch_handler.base_handler import BaseHandler

from handlers import runtime
from handlers.base import core_request, oip_body, request_header, speaks_oip
from handlers.core import Instances, Result
from handlers.errors import InputError
from handlers.metrics import HandlerMetrics
from handlers.oip_contract import HEADER_LENGTH_HEADER, JSON_CONTENT_TYPE
from handlers.oip_exchange import Exchange, Reply
from handlers.settings import HandlerSettings, ServingSettings
from handlers.stream_core import Chunk, StreamCore

SEQUENCE_HEADER = "ts_request_sequence_id"
GENERATED_PREFIX = "ts-seq-"  # TorchServe's id for a request that names no sequence


def flag(value: Any) -> bool:
    """A start/end flag as a header ("true") or a v2 parameter (true, 1, "true")."""
    return str(value).strip().lower() in ("true", "1", "yes")


def v2_sequence(exchange: Exchange, routed: str, start: bool, end: bool) -> tuple[str, bool, bool]:
    """The sequence of a v2 request: its parameters (Triton's clients' names), checked against the
    id TorchServe routed it by."""
    parameters = exchange.request.parameters if exchange.request is not None else {}
    given = parameters.get("sequence_id")
    if given not in (None, "", 0) and str(given) != routed:
        raise InputError(400, "sequence_unrouted",
                         f"parameters.sequence_id {given!r} is not the id this request was routed by ({routed!r}); "
                         f"send it in the {SEQUENCE_HEADER} header too")
    return (routed, start or flag(parameters.get("sequence_start", False)),
            end or flag(parameters.get("sequence_end", False)))


class StreamClassifier(BaseHandler):
    def initialize(self, context: Any) -> None:
        properties = context.system_properties
        config = getattr(context, "model_yaml_config", None) or {}
        settings = HandlerSettings.from_config(dict(config.get("handler") or {}))
        manifest = context.manifest
        model_dir = Path(properties["model_dir"])
        self.core = StreamCore.load(settings, model_dir, model_dir / manifest["model"]["serializedFile"],
                                    settings.name or manifest["model"]["modelName"],
                                    runtime.select_device(properties),
                                    batch_size=int(properties.get("batch_size") or 1),
                                    own_workers=ServingSettings.from_config(config).workers)
        self.handler_metrics = HandlerMetrics(self.core.name)
        self.version = str(manifest["model"].get("modelVersion") or "")
        self.initialized = True

    def chunk(self, context: Any, idx: int, item: Any, exchange: Exchange | None) -> Chunk:
        routed = str(context.get_sequence_id(idx) or "")
        start = flag(request_header(context, idx, context.header_key_sequence_start))
        end = flag(request_header(context, idx, context.header_key_sequence_end))
        if not routed:  # not through TorchServe's frontend (in process): named as it names them
            routed = f"{GENERATED_PREFIX}{uuid.uuid4()}"
        if routed.startswith(GENERATED_PREFIX):
            # A request that named no sequence is a whole text: answered and not kept, so clients
            # that do not stream (probes, load tests, other models' tools) never fill the bound.
            start, end = True, True
        if exchange is None:
            return Chunk(core_request(context, idx, item), routed, start, end)
        try:
            routed, start, end = v2_sequence(exchange, routed, start, end)
        except InputError as err:
            return Chunk(Instances(refused=err), routed)
        return Chunk(exchange.item, routed, start, end)

    def handle(self, data: list[Any], context: Any) -> list[Any]:
        exchanges = {idx: Exchange(oip_body(item), request_header(context, idx, HEADER_LENGTH_HEADER),
                                   "text", self.core.core.k)
                     for idx, item in enumerate(data) if speaks_oip(context, idx)}
        chunks = [self.chunk(context, idx, item, exchanges.get(idx)) for idx, item in enumerate(data)]
        ids = [context.get_request_id(idx) for idx in range(len(data))]
        results = self.core.answer(chunks, ids, self.handler_metrics.for_batch(context))
        replies = [self.reply(exchanges.get(idx), result) for idx, result in enumerate(results)]
        for idx, reply in enumerate(replies):
            if reply.status != 200:
                context.set_response_status(reply.status, HTTPStatus(reply.status).phrase, idx)
            context.set_response_content_type(idx, reply.content_type)
            for name, value in {**reply.headers, SEQUENCE_HEADER: chunks[idx].sequence_id}.items():
                context.set_response_header(idx, name, value)
            if chunks[idx].sequence_id not in self.core.store:
                # Not live here (ended, refused, unknown): TorchServe drops its sequence now
                # rather than after the idle time (SequenceContinuousBatching.setJobGroupFinished).
                context.set_response_header(idx, context.header_key_sequence_end, chunks[idx].sequence_id)
        return [reply.body for reply in replies]

    def reply(self, exchange: Exchange | None, result: Result) -> Reply:
        if exchange is None:
            return Reply(result.status, result.body, JSON_CONTENT_TYPE)
        if result.status == 200:  # a chunk is one text: the v2 codec answers an Instances of one
            result = Result(200, {"model": self.core.name, "answers": [result.body]})
        return exchange.reply(result, self.core.name, self.version)
