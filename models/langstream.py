"""`langstream`: a unidirectional character GRU that names the language of a text read in chunks.

The same data and labels as `langid` (models/langid_data.py), but one direction only: its hidden
state after any prefix is the whole summary of that prefix, so a server can keep it per stream and
continue it with the next chunk (handlers/stream_*.py). Trained with a loss at every character, so
the answer after each chunk is the language of everything so far.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.langid_data import LABELS

SEED = 0
BATCH_SIZE = 256
EPOCHS = 4  # the budget: under ~2 minutes on 2 cores (it trains in every clean clone's `make serve`)
PREFIX_CHARS = (4, 8, 16, 32, 64, 128)  # held-out accuracy after this many characters of a sentence


class LangStreamGRU(nn.Module):
    def __init__(self, num_classes: int = 7, vocab_size: int = 64, embedding: int = 32, hidden: int = 96):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding, padding_idx=0)
        self.gru = nn.GRU(embedding, hidden, batch_first=True)
        self.classifier = nn.Linear(hidden, num_classes)

    @property
    def hidden_size(self) -> int:
        return self.gru.hidden_size

    def step(self, ids: torch.Tensor, lengths: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Each row's state after its own `lengths[i]` ids: ids [B, T] (padded), state [B, H] -> [B, H].

        Packed, so a row's new state depends on its own characters only, never on the padding its
        batch needs for longer rows of other sequences."""
        from torch.nn.utils.rnn import pack_padded_sequence

        packed = pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, final = self.gru(packed, state.unsqueeze(0).contiguous())
        return final[0]

    def initial_state(self, rows: int) -> torch.Tensor:
        return torch.zeros(rows, self.hidden_size, device=self.classifier.weight.device)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits of whole texts (one chunk each, from the initial state): [B, T], [B] -> [B, C]."""
        return self.classifier(self.step(ids, lengths, self.initial_state(len(ids))))

    def every_position(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits after every character: [B, T] -> [B, T, C] (padding only follows a row's text,
        and a unidirectional GRU never looks ahead, so earlier positions are exact)."""
        outputs, _ = self.gru(self.embedding(ids))
        return self.classifier(outputs)


def train(spec: Any, out_dir: Path) -> dict[str, Any]:
    from models.training import seed_everything

    seed_everything(SEED)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as langid: one thread is faster for a GRU this small on a shared machine
    try:
        return _train(spec, out_dir)
    finally:
        torch.set_num_threads(threads)


def _batches(encoded: list[tuple[torch.Tensor, int]], batch_size: int):
    """Length-bucketed batches, as langid's (an RNN step costs per time step), each as
    ((ids, lengths, mask), one target per real character): the loss is at every prefix."""
    from handlers.text import pack_batch

    def batches(epoch: int):
        shuffle = random.Random(SEED + epoch)
        order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i][0]), shuffle.random()))
        chunks = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
        shuffle.shuffle(chunks)
        for chunk in chunks:
            ids, lengths = pack_batch([encoded[i][0] for i in chunk])
            mask = torch.arange(ids.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
            labels = torch.tensor([encoded[i][1] for i in chunk])
            yield (ids, mask), labels.unsqueeze(1).expand_as(ids)[mask]
    return batches


def every_prefix(model: LangStreamGRU, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The logits after every real character, in the order of the batch's targets."""
    ids, mask = inputs
    return model.every_position(ids)[mask]


def _train(spec: Any, out_dir: Path) -> dict[str, Any]:
    import json

    from handlers.text import encode
    from models.langid import build_vocab
    from models.langid_data import debian_packages, split
    from models.training import Stopwatch, fit, save_artifacts

    with Stopwatch() as clock:
        data = split(SEED)
        vocab = build_vocab(data.train)
        encoded = [(encode(text, vocab), label) for text, label in data.train]
        arguments = {"vocab_size": len(vocab) + 2, **spec.arguments}
        model = LangStreamGRU(num_classes=len(LABELS), **arguments)
        steps = (len(encoded) + BATCH_SIZE - 1) // BATCH_SIZE
        fit(model, _batches(encoded, BATCH_SIZE), every_prefix, epochs=EPOCHS, lr=5e-3,
            desc="train langstream", steps_per_epoch=steps)
        whole = {name: round(evaluate(model, samples, vocab), 4) for name, samples in data.held_out.items()}
        sentences = [s for name, samples in data.held_out.items() if name != "words" for s in samples]
        prefixes = {f"{n} chars": round(evaluate_prefix(model, sentences, vocab, n), 4) for n in PREFIX_CHARS}
    metadata = {"held_out_accuracy": whole["3-5 words"], "held_out_accuracy_by_length": whole,
                "held_out_accuracy_by_prefix": prefixes,
                "held_out_samples": {name: len(samples) for name, samples in data.held_out.items()},
                "train_samples": len(data.train), "languages": LABELS, "train_seconds": clock.seconds,
                "epochs": EPOCHS, "seed": SEED, "debian_packages": debian_packages(),
                "dataset": "Debian translated manual pages, gettext catalogues and word lists (as langid)"}
    save_artifacts(out_dir, model, LABELS, metadata, arguments=arguments)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0, sort_keys=True))
    return metadata


def evaluate(model: nn.Module, samples: list[tuple[str, int]], vocab: dict[str, int]) -> float:
    """Accuracy on whole texts (the answer after the last character), as langid's is measured."""
    from models.langid import evaluate as whole_text

    return whole_text(model, samples, vocab)


def evaluate_prefix(model: nn.Module, samples: list[tuple[str, int]], vocab: dict[str, int], chars: int) -> float:
    """Accuracy after the first `chars` characters of the held-out sentences at least that long."""
    kept = [(text[:chars], label) for text, label in samples
            if len(text) >= chars and any(ch in vocab and ch != " " for ch in text[:chars])]
    return evaluate(model, kept, vocab) if kept else 0.0
