"""The streaming core: chunks of many sequences in, one GRU step for the batch, one answer per chunk.

No runtime here (the TorchServe adapter is handlers/stream_classifier.py). Each chunk names its
sequence and whether it starts or ends it; the worker keeps each live sequence's GRU state
(handlers/stream_state.py). A batch holds at most one chunk per sequence (TorchServe's sequence
batching), so its rows, each continuing its own sequence's state, run as one packed GRU step.

Per-chunk errors keep the core's contract: a chunk refused (its input, an unknown sequence, the
bound) is answered on its own and commits nothing, so its sequence goes on from where it was and
the other rows of the batch are answered as usual; a failed step answers 500 to every row of the
batch and changes no state either.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from handlers import errors
from handlers.core import Item, Loaded, ModelCore, Result, internal_error
from handlers.errors import InputError
from handlers.inputs import Input, Request, text_accepts
from handlers.reporting import (
    BATCH_SIZE,
    INFERENCE_SECONDS,
    PREPROCESS_SECONDS,
    REQUEST_SECONDS,
    SEQUENCES_ENDED,
    SEQUENCES_EXPIRED,
    SEQUENCES_REFUSED,
    SEQUENCES_STARTED,
    NoMetrics,
    StreamMetrics,
    position_bucket,
)
from handlers.runtime import to_device
from handlers.sequence_settings import SequenceSettings
from handlers.settings import HandlerSettings
from handlers.stream_state import TOO_MANY_SEQUENCES, Entry, SequenceStore
from handlers.stream_text import continue_reading, decode_chunk, encode_chars
from handlers.text import pack_batch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    """One request of a stream: its input, its sequence and the sequence's start and end flags."""

    item: Item
    sequence_id: str
    start: bool = False
    end: bool = False


@dataclass(frozen=True)
class Planned:
    """A chunk admitted to the batch: where its sequence stands and what it feeds the model."""

    index: int
    chunk: Chunk
    entry: Entry
    entry_after: Entry   # its reading and count after this chunk; the state comes from the step
    ids: torch.Tensor


class StreamTask:
    """What the core's loader needs of a task (handlers.core.Task); a chunk decodes to its characters."""

    def __init__(self, loaded: Loaded):
        self.settings = loaded.settings.text
        self.accepts = text_accepts(self.settings.max_bytes)
        self.device = loaded.device
        self.model = loaded.model
        self.vocab: dict[str, int] = json.loads((loaded.model_dir / "vocab.json").read_text())

    def decode(self, request: Input) -> str:
        return decode_chunk(request, self.settings)

    def warmup_request(self) -> Request | None:
        return None  # a CPU GRU step has no cold shapes worth a warm-up

    def collate(self, samples: list[str]) -> Any:
        return pack_batch([encode_chars(s.strip(), self.vocab) for s in samples])

    def forward(self, batch: Any) -> torch.Tensor:
        ids, lengths = batch
        return self.model(to_device(ids, self.device), lengths)


class StreamCore:
    def __init__(self, core: ModelCore, sequence: SequenceSettings):
        self.core, self.name = core, core.name
        self.task: StreamTask = core.task  # type: ignore[assignment]
        self.store = SequenceStore(sequence.max_live_per_worker, sequence.idle_ms / 1000)
        # A model with `step(ids, lengths, state)`, `initial_state(rows)` and `classifier`
        # (models.langstream.LangStreamGRU): typed loosely, as the core loads any class by name.
        self.model: Any = core.model

    @classmethod
    def load(cls, settings: HandlerSettings, model_dir: Path, weights: Path, name: str, device: torch.device,
             batch_size: int = 1, own_workers: int = 1) -> StreamCore:
        core = ModelCore.load(StreamTask, settings, model_dir, weights, name, device, batch_size, own_workers)
        return cls(core, settings.sequence or SequenceSettings())

    def answer(self, chunks: Sequence[Chunk], ids: Sequence[Any] | None = None,
               metrics: StreamMetrics | None = None) -> list[Result]:
        """One answer per chunk, in order."""
        started = time.perf_counter()
        metrics = metrics or NoMetrics()
        ids = list(ids) if ids is not None else list(range(len(chunks)))
        metrics.count(SEQUENCES_EXPIRED, len(self.store.expire()))
        results: list[Result | None] = [None] * len(chunks)
        planned: list[Planned] = []
        for index, chunk in enumerate(chunks):
            try:
                planned.append(self.plan(index, chunk, ids[index], planned, metrics))
            except InputError as err:
                logger.warning("request %s (sequence %s) rejected: %d %s: %s", ids[index], chunk.sequence_id,
                               err.code, err.type, err.message)
                metrics.rejected(err.type)
                metrics.count(SEQUENCES_REFUSED, err.type == TOO_MANY_SEQUENCES)
                results[index] = Result(err.code, err.body(), err.type)
            except _Answered as answered:
                results[index] = answered.result
        if planned:
            self.run(planned, results, started, metrics)
        metrics.live(len(self.store))
        return [result or internal_error() for result in results]

    def plan(self, index: int, chunk: Chunk, request_id: Any, planned: list[Planned],
             metrics: StreamMetrics) -> Planned:
        """The chunk read and admitted, or the InputError refusing it; changes no state."""
        samples, refused = self.core.read_or_answer(chunk.item, request_id, metrics)
        if refused is not None:
            raise _Answered(refused)
        if len(samples) != 1:
            raise InputError(400, errors.INVALID_REQUEST,
                             f"a chunk of a sequence is one text; this request has {len(samples)}")
        new = sum(1 for p in planned if p.chunk.sequence_id not in self.store)
        entry = self.store.admit(chunk.sequence_id, chunk.start, new)
        fed, reading = continue_reading(entry.reading, samples[0])
        if reading.chars == 0:
            raise InputError(422, errors.UNCLASSIFIABLE_TEXT,
                             f"sequence {chunk.sequence_id!r} has no letters to classify yet (only digits, "
                             "punctuation, symbols or spaces so far)")
        after = Entry(entry.state, reading, entry.chunks + 1)
        return Planned(index, chunk, entry, after, encode_chars(fed, self.task.vocab))

    def run(self, planned: list[Planned], results: list[Result | None], started: float,
            metrics: StreamMetrics) -> None:
        """One GRU step over the planned rows; each row's answer, then its state committed."""
        stepping = time.perf_counter()
        try:
            with torch.inference_mode():
                states = self.step(planned)
                logits = self.model.classifier(torch.stack(states))
            answers = self.core.rank(logits)
        except Exception:
            logger.exception("model %s: a step of %d chunks failed; answering 500, no state changed",
                             self.name, len(planned))
            metrics.failed_batch()
            for _ in planned:
                metrics.rejected("internal_error")
            return
        stepped = time.perf_counter()
        metrics.observe(BATCH_SIZE, len(planned))
        metrics.observe(INFERENCE_SECONDS, stepped - stepping)
        finished = time.perf_counter()
        for row, state, body in zip(planned, states, answers):
            after = row.entry_after
            self.store.commit(row.chunk.sequence_id, Entry(state, after.reading, after.chunks), end=row.chunk.end)
            metrics.count(SEQUENCES_STARTED, row.chunk.start)
            metrics.count(SEQUENCES_ENDED, row.chunk.end)
            metrics.chunk(finished - started, position_bucket(after.chunks))
            # As every model's: the per-model latency quantiles, SLO alerts and stage panels read these.
            metrics.observe(REQUEST_SECONDS, finished - started)
            results[row.index] = Result(200, body)
        metrics.observe(PREPROCESS_SECONDS, stepping - started)

    def step(self, planned: list[Planned]) -> list[torch.Tensor]:
        """Each row's state after its chunk: rows that feed characters run as one packed step from
        their own states; a row that feeds none (only separators) keeps its state."""
        model = self.model
        moving = [row for row in planned if len(row.ids)]
        after: dict[int, torch.Tensor] = {}
        if moving:
            ids, lengths = pack_batch([row.ids for row in moving])
            start = torch.stack([row.entry.state if row.entry.state is not None
                                 else model.initial_state(1)[0] for row in moving])
            # A copy per row: a row of the batch's output would keep the whole batch's tensor alive
            # for as long as any of its sequences lives.
            for row, state in zip(moving, model.step(to_device(ids, self.task.device), lengths, start)):
                after[row.index] = state.clone()
        return [after.get(row.index, row.entry.state) for row in planned]


class _Answered(Exception):
    """A chunk answered while it was read (the input stage's own 4xx or 500)."""

    def __init__(self, result: Result):
        super().__init__(result.error_type)
        self.result = result
