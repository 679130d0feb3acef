"""The `sequence:` section of a model spec: a stateful (streaming) model, one state per sequence.

A spec with this section is served with TorchServe's sequence batching; `torchserve_keys` is what
it adds to the top of the archive's model-config.yaml (the keys TorchServe 0.12 reads in
frontend/archive/.../ModelConfig.java), and the handler reads the section itself under `handler:`
(its bound and idle time, handlers/stream_state.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from handlers.sections import read

Config = dict[str, Any]


@dataclass(frozen=True)
class SequenceSettings:
    idle_ms: int = 10000              # a sequence with no chunk for this long is freed (both sides)
    max_live_per_worker: int = 64     # live sequences one worker holds; a new one beyond gets 429
    queue_per_sequence: int = 2       # chunks of one sequence waiting in TorchServe (maxSequenceJobQueueSize)
    given: tuple[str, ...] = field(default=(), repr=False)  # the keys the file wrote (handlers.sections)

    @classmethod
    def from_config(cls, cfg: Config | None) -> SequenceSettings:
        return read(cls, cfg, "sequence settings")

    def torchserve_keys(self, workers: int) -> Config:
        """TorchServe's own keys for this section.

        `continuousBatching` with `sequenceBatching` is 0.12's SequenceContinuousBatching: the one
        that drops a sequence when the handler's answer names it in `ts_request_sequence_end`
        (plain SequenceBatching never hears of an end, and each ended or refused sequence would
        hold one of the worker's batchSize + 1 polling threads for the idle time). Its
        maxNumSequence bounds sequences model-wide: twice the workers' own bounds, so the
        handler's 429 is the bound clients meet."""
        return {"sequenceBatching": True, "continuousBatching": True, "sequenceMaxIdleMSec": self.idle_ms,
                "maxNumSequence": 2 * self.max_live_per_worker * max(1, workers),
                "maxSequenceJobQueueSize": self.queue_per_sequence}
