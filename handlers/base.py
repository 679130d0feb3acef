"""The shared TorchServe glue: one request per item, each with its own status, one forward pass.

Subclasses say how to decode one request (`decode`), how to batch decoded items (`collate`) and,
if needed, how to call the model (`forward`). Everything else — device and threads, loading,
per-item errors, metrics, top-k answers — lives here once.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from ts.torch_handler.base_handler import BaseHandler

from handlers import errors, payload, runtime
from handlers.errors import InputError
from handlers.labels import read_labels
from handlers.metrics import (
    BATCH_SIZE,
    INFERENCE_SECONDS,
    POSTPROCESS_SECONDS,
    PREPROCESS_SECONDS,
    REQUEST_SECONDS,
    HandlerMetrics,
)
from handlers.settings import HandlerSettings, ServingSettings
from handlers.topk import answer, top_k

logger = logging.getLogger(__name__)

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def forward_batch_sizes(batch_size: int, pad: bool) -> list[int]:
    """The batch sizes a worker's forward pass runs at: every size up to `batch_size`, or with
    `pad`, the powers of two below it and `batch_size` itself (8 -> 1, 2, 4, 8; 6 -> 1, 2, 4, 6)."""
    batch_size = max(1, batch_size)
    if not pad:
        return list(range(1, batch_size + 1))
    return [1 << i for i in range(batch_size.bit_length()) if 1 << i < batch_size] + [batch_size]


def pad_batch(samples: list[Any], sizes: list[int]) -> list[Any]:
    """`samples` repeated at the end up to the smallest of `sizes` that holds them."""
    target = next((size for size in sizes if size >= len(samples)), len(samples))
    return samples + [samples[-1]] * (target - len(samples))


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


class ClassifierHandler(BaseHandler):
    """Base for our classifiers. TorchServe calls `initialize(context)` once, `handle` per batch."""

    def initialize(self, context: Any) -> None:
        properties = context.system_properties
        self.model_yaml_config = getattr(context, "model_yaml_config", None) or {}
        config = dict(self.model_yaml_config.get("handler") or {})
        self.handler_settings = settings = HandlerSettings.from_config(config)
        self.manifest = context.manifest
        self.name = settings.name or self.manifest["model"]["modelName"]
        self.device = runtime.select_device(properties)
        self.threads = runtime.configure_threads(settings.torch_threads,
                                                 ServingSettings.from_config(self.model_yaml_config).workers,
                                                 settings.workers_on_host)
        model_dir = Path(properties["model_dir"])
        # stackctl writes labels.json into every archive, whatever form the user's labels had.
        self.labels = read_labels(model_dir / "labels.json")
        self.k = settings.top_k
        self.model = runtime.load_model(settings.architecture, settings.arguments,
                                        model_dir / self.manifest["model"]["serializedFile"],
                                        len(self.labels), self.device)
        if settings.fuse_conv_bn:
            self.model = runtime.fuse_conv_bn(self.model)
        self.autocast_dtype = AUTOCAST_DTYPES.get(settings.precision) if self.device.type == "cuda" else None
        self.handler_metrics = HandlerMetrics(self.name)
        self.setup(settings, model_dir)
        # On CUDA each new batch size costs a one-off 1.3-2.2 s for mobilenet_v3_small on an H100
        # (cuDNN plans, lazily loaded kernels). Padding batches to a
        # power of two leaves fewer sizes to warm up before READY, at the price of a few repeated
        # items, which the GPU computes in parallel anyway.
        pad = settings.pad_batches
        self.batch_sizes = forward_batch_sizes(int(properties.get("batch_size") or 1),
                                               self.device.type == "cuda" if pad == "auto" else bool(pad))
        self.warmed_up = self.warm_up(self.batch_sizes) if settings.warmup else []
        self.initialized = True
        logger.info("model %s ready on %s with %d torch threads", self.name, self.device, self.threads)

    # --- what subclasses provide -------------------------------------------------------------
    form_field: str | None = None  # the form field a form-encoded request carries the input in

    def setup(self, settings: HandlerSettings, model_dir: Path) -> None:
        """Read task-specific settings (called once at the end of initialize)."""

    def decode(self, body: Any, content_type: str | None) -> Any:
        raise NotImplementedError

    def collate(self, samples: list[Any]) -> Any:
        return torch.stack(samples)

    def forward(self, batch: Any) -> torch.Tensor:
        return self.model(self.to_device(batch))

    def warmup_request(self) -> tuple[bytes, str] | None:
        """A valid request (body, content type) to warm the model up with; None: no warm-up."""
        return None

    # --- shared mechanics --------------------------------------------------------------------
    def warm_up(self, sizes: list[int]) -> list[int]:
        """One forward pass at every batch size in `sizes` before the worker reports READY.

        The first call at a new input shape pays one-off costs that a served request should not
        (on CUDA the libraries choose and load kernels per shape). Measured on an H100 with
        mobilenet_v3_small: 1.3-2.2 s per worker and new batch size, one
        core busy, while requests queued behind it until the queue overflowed into 503s. Returns
        the sizes warmed; a warm-up request the handler rejects leaves the worker cold, not broken.
        """
        request = self.warmup_request()
        if request is None:
            return []
        try:
            sample = self.decode(*request)
        except InputError as err:
            logger.warning("model %s: warm-up request rejected (%s); serving without warm-up", self.name, err.message)
            return []
        started = time.perf_counter()
        with torch.inference_mode(), self._autocast():
            for size in sizes:
                self.forward(self.collate([sample] * size))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        logger.info("model %s warmed up at batch sizes %s in %.2f s", self.name, sizes, time.perf_counter() - started)
        return sizes

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device == self.device:
            return tensor
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    def handle(self, data: list[Any], context: Any) -> list[Any]:
        started = time.perf_counter()
        answers: list[Any] = [None] * len(data)
        valid: list[tuple[int, Any]] = []
        for idx, item in enumerate(data):
            sent_as = request_header(context, idx, payload.ORIGINAL_CONTENT_TYPE)
            try:
                body, content_type = payload.request_input(item, request_content_type(context, idx, item),
                                                           self.form_field, sent_as)
                sample = self.decode(body, content_type)
            except InputError as err:
                answers[idx] = self._reject(context, idx, payload.with_form_hint(err, sent_as))
            except Exception:  # a decoder bug answers this item with 500, never the whole batch
                logger.exception("request %s: unexpected error while decoding", context.get_request_id(idx))
                answers[idx] = self._fail(context, idx)
            else:
                valid.append((idx, sample))
        if valid:
            try:
                self._answer_batch(context, valid, answers, started)
            except Exception:  # collate/forward/top-k: every item of this batch gets its own 500
                ids = [context.get_request_id(idx) for idx, _ in valid]
                logger.exception("model %s: batch of %d failed after decoding; answering 500 to requests %s",
                                 self.name, len(valid), ids)
                self.handler_metrics.failed_batch(context)
                for idx, _ in valid:
                    answers[idx] = self._fail(context, idx)
        return answers

    def _answer_batch(self, context: Any, valid: list[tuple[int, Any]], answers: list[Any], started: float) -> None:
        """One forward pass over the decoded items; each answer goes to its slot in `answers`."""
        decoded = time.perf_counter()
        self.handler_metrics.observe(context, PREPROCESS_SECONDS, decoded - started)
        batch = self.collate(pad_batch([sample for _, sample in valid], self.batch_sizes))
        with torch.inference_mode(), self._autocast():
            logits = self.forward(batch)[:len(valid)]
        inferred = time.perf_counter()
        self.handler_metrics.observe(context, INFERENCE_SECONDS, inferred - decoded)
        self.handler_metrics.observe(context, BATCH_SIZE, len(valid))
        for (idx, _), items in zip(valid, top_k(logits, self.labels, self.k)):
            answers[idx] = answer(self.name, items)
            context.set_response_content_type(idx, "application/json")
        finished = time.perf_counter()
        self.handler_metrics.observe(context, POSTPROCESS_SECONDS, finished - inferred)
        # One observation per answered request, so its quantiles are per-request quantiles of
        # the time spent in the worker (rejected items are excluded: they would drag them down).
        for _ in valid:
            self.handler_metrics.observe(context, REQUEST_SECONDS, finished - started)

    def _autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast("cpu", enabled=False)
        return torch.autocast("cuda", dtype=self.autocast_dtype)

    def _reject(self, context: Any, idx: int, err: InputError) -> dict[str, Any]:
        logger.warning("request %s rejected: %d %s: %s", context.get_request_id(idx), err.code, err.type, err.message)
        self.handler_metrics.rejected(context, err.type)
        context.set_response_status(err.code, err.phrase, idx)
        context.set_response_content_type(idx, "application/json")
        return err.body()

    def _fail(self, context: Any, idx: int) -> dict[str, Any]:
        self.handler_metrics.rejected(context, "internal_error")
        context.set_response_status(500, "Internal Server Error", idx)
        context.set_response_content_type(idx, "application/json")
        return errors.error_body(500, "internal_error", "the server failed to process this item; see server logs")
