"""The model core: requests in, one answer per request out, with no serving runtime in it.

It owns the path every runtime shares: the input stage (`handlers/inputs.py`), the task's decoder
(`ImageTask`, `TextTask`), collate -> forward -> top-k as one batch, and the errors: an
`InputError` is that item's own 4xx, a decoder bug that item's 500, a failed batch a 500 for each
of its items. Also warm-up, autocast, batch padding and the metrics hooks (`handlers/reporting.py`).
Runtime adapters (TorchServe's `handlers/base.py`, the bench's peers) only translate their
requests and answers; nothing here imports TorchServe.

A request may carry several inputs (`Instances`: an Open Inference Protocol request of N
elements, `handlers/oip_exchange.py`): each is read exactly as a request of its own would be, all
N join the one forward pass, and one that fails refuses its whole request (400 naming it), no other.
"""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol, cast

import torch

from handlers import errors, runtime
from handlers.errors import InputError
from handlers.inputs import Accepts, Input, Request, read_request, with_form_hint
from handlers.labels import read_labels
from handlers.reporting import (
    BATCH_SIZE,
    INFERENCE_SECONDS,
    POSTPROCESS_SECONDS,
    PREPROCESS_SECONDS,
    REQUEST_SECONDS,
    Metrics,
    NoMetrics,
)
from handlers.settings import HandlerSettings
from handlers.topk import answer, top_k

logger = logging.getLogger(__name__)

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Task(Protocol):
    """What one kind of model adds to the core (image: `ImageTask`, text: `TextTask`)."""

    accepts: Accepts
    model: torch.nn.Module

    def decode(self, request: Input) -> Any: ...

    def collate(self, samples: list[Any]) -> Any: ...

    def forward(self, batch: Any) -> torch.Tensor: ...

    def warmup_request(self) -> Request | None: ...


@dataclass(frozen=True)
class Loaded:
    """What a task is built from: the settings, the archive's folder, the model as loaded (the task
    may convert it: `task.model` is the one served) and where it runs."""

    settings: HandlerSettings
    model_dir: Path
    model: torch.nn.Module
    device: torch.device
    threads: int
    name: str


@dataclass(frozen=True)
class Instances:
    """One request that carries several inputs, each read like a request of its own (`requests`),
    answered together: {"model": name, "answers": [one answer per input]}. `refused`: the
    request's own 4xx, found before any input was read (a malformed envelope)."""

    requests: tuple[Request, ...] = ()
    refused: InputError | None = None


Item = Request | Instances


def is_instances(item: Item) -> bool:
    """Whether `item` carries several inputs. By shape, not class: callers such as the bench's
    peers build their `Request`s from the repository's handlers/ while the core they call was
    imported from the archive's copy, so the classes differ."""
    return hasattr(item, "refused")


@dataclass(frozen=True)
class Result:
    """One request's answer: its HTTP status and JSON body (`error_type` for an error)."""

    status: int
    body: dict[str, Any]
    error_type: str | None = None

    @property
    def phrase(self) -> str:
        return HTTPStatus(self.status).phrase


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


def forward_chunk(limit: int | None, largest: int, pads: bool) -> int | None:
    """The most samples one forward pass runs (None: all of a batch), for batches that requests of
    several instances make larger than `batch_size`. Padded (CUDA), at most the largest warmed
    size, so that no pass meets a cold shape (each costs seconds there, see ModelCore.__init__);
    otherwise the spec's `max_forward_batch`, where a bigger pass costs more per item."""
    if pads:
        return min(limit or largest, largest)
    return limit


def internal_error() -> Result:
    return Result(500, errors.error_body(500, "internal_error", "the server failed to process this item; see server logs"),
                  "internal_error")


class ModelCore:
    """One model, ready to answer: `answer` for whole batches; `decode` and `predict` for callers
    that batch themselves (the bench's peers and limit)."""

    def __init__(self, task: Task, loaded: Loaded, labels: Sequence[str], batch_size: int):
        settings = loaded.settings
        self.task, self.name, self.device, self.threads = task, loaded.name, loaded.device, loaded.threads
        self.labels, self.k = labels, settings.top_k
        self.autocast_dtype = AUTOCAST_DTYPES.get(settings.precision) if self.device.type == "cuda" else None
        # On CUDA each new batch size costs a one-off 1.3-2.2 s for mobilenet_v3_small on an H100
        # (cuDNN plans, lazily loaded kernels). Padding batches to a power of two leaves fewer
        # sizes to warm up before READY, at the price of a few repeated items, which the GPU
        # computes in parallel anyway.
        pad = settings.pad_batches
        self.pads = self.device.type == "cuda" if pad == "auto" else bool(pad)
        self.batch_sizes = forward_batch_sizes(batch_size, self.pads)
        self.chunk = forward_chunk(settings.max_forward_batch, self.batch_sizes[-1], self.pads)
        self.warmed_up = self.warm_up(self.batch_sizes) if settings.warmup else []

    @classmethod
    def load(cls, task_class: Any, settings: HandlerSettings, model_dir: Path, weights: Path, name: str,
             device: torch.device, batch_size: int = 1, own_workers: int = 1) -> ModelCore:
        """Threads, labels, weights and the task's own setup, then warm-up: a model ready to serve."""
        threads = runtime.configure_threads(settings.torch_threads, own_workers, settings.workers_on_host)
        # stackctl writes labels.json into every archive, whatever form the user's labels had.
        labels = read_labels(model_dir / "labels.json")
        model = runtime.load_model(settings.architecture, settings.arguments, weights, len(labels), device)
        if settings.fuse_conv_bn:
            model = runtime.fuse_conv_bn(model)
        loaded = Loaded(settings, model_dir, model, device, threads, name)
        core = cls(task_class(loaded), loaded, labels, batch_size)
        logger.info("model %s ready on %s with %d torch threads", name, device, threads)
        return core

    @property
    def model(self) -> torch.nn.Module:
        return self.task.model

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The spec's `precision` on CUDA (bf16/fp16 autocast); off everywhere else."""
        if self.autocast_dtype is None:
            return torch.autocast("cpu", enabled=False)
        return torch.autocast("cuda", dtype=self.autocast_dtype)

    # --- one request -----------------------------------------------------------------------------
    def decode(self, request: Request) -> Any:
        """The input stage, then the task's decoder: one model input, or the InputError that
        answers the request (with the form hint when the client labelled the body a form)."""
        try:
            return self.task.decode(read_request(request, self.task.accepts))
        except InputError as err:
            raise with_form_hint(err, request) from None

    def decode_instance(self, index: int, request: Request) -> Any:
        """`decode` for input `index` of an `Instances`: its error refuses the whole request with
        400, naming the input (`instance 3: image_too_large: ...`)."""
        try:
            return self.decode(request)
        except InputError as err:
            raise InputError(400, err.type, f"instance {index}: {err.type}: {err.message}") from None

    def samples_of(self, item: Item) -> list[Any]:
        """The model inputs of one request (one, or one per instance), or the InputError refusing it."""
        if not is_instances(item):
            return [self.decode(cast(Request, item))]
        instances = cast(Instances, item)
        if instances.refused is not None:
            raise instances.refused
        return [self.decode_instance(index, request) for index, request in enumerate(instances.requests)]

    def read_or_answer(self, item: Item, request_id: Any = None,
                       metrics: Metrics | None = None) -> tuple[list[Any], Result | None]:
        """(samples, None), or ([], the request's own error answer): 4xx for its input, 500 for a
        decoder bug (logged); never raises for one request. One rejection counted per request."""
        metrics = metrics or NoMetrics()
        try:
            return self.samples_of(item), None
        except InputError as err:
            logger.warning("request %s rejected: %d %s: %s", request_id, err.code, err.type, err.message)
            metrics.rejected(err.type)
            return [], Result(err.code, err.body(), err.type)
        except Exception:  # a decoder bug answers this item with 500, never the whole batch
            logger.exception("request %s: unexpected error while decoding", request_id)
            metrics.rejected("internal_error")
            return [], internal_error()

    def decode_or_answer(self, request: Request, request_id: Any = None,
                         metrics: Metrics | None = None) -> tuple[Any, Result | None]:
        """(sample, None), or (None, the request's own error answer): `read_or_answer` for one input."""
        samples, result = self.read_or_answer(request, request_id, metrics)
        return (samples[0] if samples else None), result

    # --- one batch -------------------------------------------------------------------------------
    def infer(self, samples: list[Any]) -> torch.Tensor:
        """Logits for decoded samples as one forward pass (padded per `batch_sizes`), or as
        passes of at most `chunk` samples (`forward_chunk`) when there are more."""
        if self.chunk is not None and len(samples) > self.chunk:
            return torch.cat([self.infer(samples[start:start + self.chunk])
                              for start in range(0, len(samples), self.chunk)])
        batch = self.task.collate(pad_batch(samples, self.batch_sizes))
        with torch.inference_mode(), self.autocast():
            return self.task.forward(batch)[:len(samples)]

    def rank(self, logits: torch.Tensor) -> list[dict[str, Any]]:
        """The top-k answer of each row of logits."""
        return [answer(self.name, items) for items in top_k(logits, self.labels, self.k)]

    def predict(self, samples: list[Any]) -> list[dict[str, Any]]:
        """The answers for decoded samples, run as one batch: collate -> forward -> top-k."""
        return self.rank(self.infer(samples))

    def answer(self, requests: Sequence[Item], ids: Sequence[Any] | None = None,
               metrics: Metrics | None = None) -> list[Result]:
        """One answer per request, in order: the whole path for a batch, each item's errors its own."""
        started = time.perf_counter()
        metrics = metrics or NoMetrics()
        ids = list(ids) if ids is not None else list(range(len(requests)))
        results: list[Result | None] = [None] * len(requests)
        valid: list[tuple[int, list[Any]]] = []
        for idx, request in enumerate(requests):
            samples, results[idx] = self.read_or_answer(request, ids[idx], metrics)
            if results[idx] is None:
                valid.append((idx, samples))
        if valid:
            try:
                self._answer_batch(valid, requests, results, started, metrics)
            except Exception:  # collate/forward/top-k: every item of this batch gets its own 500
                logger.exception("model %s: batch of %d failed after decoding; answering 500 to requests %s",
                                 self.name, len(valid), [ids[idx] for idx, _ in valid])
                metrics.failed_batch()
                for idx, _ in valid:
                    metrics.rejected("internal_error")
                    results[idx] = internal_error()
        return [result or internal_error() for result in results]

    def _answer_batch(self, valid: list[tuple[int, list[Any]]], requests: Sequence[Item],
                      results: list[Result | None], started: float, metrics: Metrics) -> None:
        """One forward pass over the samples of every decoded request; each request's answer goes
        to its slot in `results`."""
        decoded = time.perf_counter()
        metrics.observe(PREPROCESS_SECONDS, decoded - started)
        logits = self.infer([sample for _, samples in valid for sample in samples])
        inferred = time.perf_counter()
        metrics.observe(INFERENCE_SECONDS, inferred - decoded)
        metrics.observe(BATCH_SIZE, len(logits))
        answers = iter(self.rank(logits))
        for idx, samples in valid:
            mine = [next(answers) for _ in samples]
            body = {"model": self.name, "answers": mine} if is_instances(requests[idx]) else mine[0]
            results[idx] = Result(200, body)
        finished = time.perf_counter()
        metrics.observe(POSTPROCESS_SECONDS, finished - inferred)
        # One observation per answered request, so its quantiles are per-request quantiles of
        # the time spent in the worker (rejected items are excluded: they would drag them down).
        for _ in valid:
            metrics.observe(REQUEST_SECONDS, finished - started)

    def warm_up(self, sizes: list[int]) -> list[int]:
        """One forward pass at every batch size in `sizes` before the worker reports READY.

        The first call at a new input shape pays one-off costs that a served request should not
        (on CUDA the libraries choose and load kernels per shape). Measured on an H100 with
        mobilenet_v3_small: 1.3-2.2 s per worker and new batch size, one
        core busy, while requests queued behind it until the queue overflowed into 503s. Returns
        the sizes warmed; a warm-up request the task rejects leaves the worker cold, not broken.
        """
        request = self.task.warmup_request()
        if request is None:
            return []
        try:
            sample = self.decode(request)
        except InputError as err:
            logger.warning("model %s: warm-up request rejected (%s); serving without warm-up", self.name, err.message)
            return []
        started = time.perf_counter()
        with torch.inference_mode(), self.autocast():
            for size in sizes:
                self.task.forward(self.task.collate([sample] * size))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        logger.info("model %s warmed up at batch sizes %s in %.2f s", self.name, sizes, time.perf_counter() - started)
        return sizes
