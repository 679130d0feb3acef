"""The states a worker keeps, one per live sequence: bounded, expired when idle, never evicted.

No runtime here: the stream core (handlers/stream_core.py) asks `admit` for the state a chunk
continues from, runs the batch, and `commit`s the states that came out. A chunk refused on the way
commits nothing, so its sequence goes on from where it was. TorchServe never tells a worker that
it dropped a sequence, so idle ones are found here (`expire`, before each batch) with the spec's
idle time, which TorchServe uses too (sequenceMaxIdleMSec).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from handlers.errors import InputError
from handlers.stream_text import Reading

SEQUENCE_UNKNOWN = "sequence_unknown"
TOO_MANY_SEQUENCES = "too_many_sequences"
SEQUENCE_ERROR_TYPES = (SEQUENCE_UNKNOWN, TOO_MANY_SEQUENCES)


@dataclass(frozen=True)
class Entry:
    """One sequence's state: the model's (`state`, None before the first character), what its text
    reads so far, how many chunks it has answered, and when it last did."""

    state: Any = None
    reading: Reading = field(default_factory=Reading)
    chunks: int = 0
    touched: float = 0.0


class SequenceStore:
    def __init__(self, max_live: int, idle_s: float, clock: Callable[[], float] = time.monotonic):
        self.max_live, self.idle_s, self.clock = max_live, idle_s, clock
        self.entries: dict[str, Entry] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, sequence_id: object) -> bool:
        return sequence_id in self.entries

    def expire(self) -> list[str]:
        """Free the sequences idle longer than the idle time; their ids."""
        now = self.clock()
        idle = [sid for sid, entry in self.entries.items() if now - entry.touched > self.idle_s]
        for sid in idle:
            del self.entries[sid]
        return idle

    def admit(self, sequence_id: str, start: bool, admitted_new: int = 0) -> Entry:
        """The entry a chunk continues: a fresh one for a start, the sequence's own otherwise.
        Changes nothing. `admitted_new`: new sequences this batch has admitted but not committed,
        which count against the bound."""
        if not start:
            entry = self.entries.get(sequence_id)
            if entry is None:
                raise InputError(400, SEQUENCE_UNKNOWN,
                                 f"sequence {sequence_id!r} is not live on this worker (never started, ended, "
                                 "idle past its limit, or its worker restarted); send this chunk again with "
                                 "the start flag to begin it anew")
            return entry
        if sequence_id not in self.entries and len(self.entries) + admitted_new >= self.max_live:
            raise InputError(429, TOO_MANY_SEQUENCES,
                             f"this worker holds {len(self.entries)} live sequences, its limit; sequence "
                             f"{sequence_id!r} was not started (live ones are never evicted): end finished "
                             "sequences, or retry with backoff")
        return Entry()

    def commit(self, sequence_id: str, entry: Entry, end: bool = False) -> None:
        """The sequence's entry after an answered chunk; `end` frees it instead."""
        if end:
            self.entries.pop(sequence_id, None)
        else:
            self.entries[sequence_id] = Entry(entry.state, entry.reading, entry.chunks, self.clock())
