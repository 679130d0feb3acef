"""The per-sequence state store and the chunked text reading of streaming models (handlers/stream_*.py)."""
from __future__ import annotations

import random

import pytest

from handlers.errors import InputError
from handlers.settings import TextSettings
from handlers.stream_state import SEQUENCE_UNKNOWN, TOO_MANY_SEQUENCES, Entry, SequenceStore
from handlers.stream_text import Reading, chunk_chars, continue_reading


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_chunk_without_start_of_an_unknown_sequence_is_refused_naming_it() -> None:
    store = SequenceStore(max_live=2, idle_s=10)
    with pytest.raises(InputError) as err:
        store.admit("s-1", start=False)
    assert (err.value.code, err.value.type) == (400, SEQUENCE_UNKNOWN) and "'s-1'" in err.value.message


def test_start_admits_and_commit_makes_it_live_end_frees_it() -> None:
    store = SequenceStore(max_live=2, idle_s=10)
    entry = store.admit("a", start=True)
    assert "a" not in store  # admitting changes nothing
    store.commit("a", Entry("state", Reading(3), 1))
    assert store.admit("a", start=False).state == "state"
    assert store.admit("a", start=True) == Entry()  # a start restarts
    store.commit("a", entry, end=True)
    assert "a" not in store and len(store) == 0


def test_the_bound_refuses_new_sequences_never_evicts_live_ones() -> None:
    store = SequenceStore(max_live=2, idle_s=10)
    for sid in ("a", "b"):
        store.commit(sid, store.admit(sid, start=True))
    with pytest.raises(InputError) as err:
        store.admit("c", start=True)
    assert (err.value.code, err.value.type) == (429, TOO_MANY_SEQUENCES)
    assert set(store.entries) == {"a", "b"}
    store.admit("a", start=True)  # restarting a live one is no new sequence
    store.commit("a", Entry(), end=True)
    store.admit("c", start=True)


def test_new_sequences_admitted_in_the_same_batch_count_against_the_bound() -> None:
    store = SequenceStore(max_live=2, idle_s=10)
    store.admit("a", start=True, admitted_new=0)
    store.admit("b", start=True, admitted_new=1)
    with pytest.raises(InputError):
        store.admit("c", start=True, admitted_new=2)


def test_idle_sequences_expire_and_are_then_unknown() -> None:
    clock = Clock()
    store = SequenceStore(max_live=4, idle_s=10, clock=clock)
    store.commit("old", Entry())
    clock.now += 6
    store.commit("young", Entry())
    clock.now += 5
    assert store.expire() == ["old"] and "young" in store
    with pytest.raises(InputError):
        store.admit("old", start=False)


def test_chunks_read_the_same_characters_wherever_the_text_is_cut() -> None:
    settings = TextSettings()
    rng = random.Random(0)
    for text in ["Hello  world, this is -- a test!", "  l'été, à Paris... ", "¡Hola! 123 mundo", "..."]:
        whole, reading = continue_reading(Reading(), chunk_chars(text, settings))
        for _ in range(20):
            cuts = sorted(rng.sample(range(len(text) + 1), 3))
            fed, reading_cut = "", Reading()
            for a, b in zip([0, *cuts], [*cuts, len(text)]):
                piece, reading_cut = continue_reading(reading_cut, chunk_chars(text[a:b], settings))
                fed += piece
            assert (fed, reading_cut) == (whole, reading)
    assert continue_reading(Reading(), chunk_chars(" Ab, cd. ", settings))[0] == "ab cd"


def test_a_chunk_over_the_limit_is_refused() -> None:
    with pytest.raises(InputError) as err:
        chunk_chars("x" * 11, TextSettings(max_chars=10))
    assert err.value.code == 413
