"""`langid`: a character-level bidirectional GRU that names the language of a word or short text.

Data: Debian's word lists (packages wamerican, wngerman, wfrench, wspanish, witalian,
wportuguese, wdutch). Words found in more than one list are dropped (they carry no signal);
held-out words are never seen in training. Short phrases are built from words of one language,
so inputs of one to a few words are in distribution.
"""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

SEED = 0
WORDS_PER_LANGUAGE = 6000
HELD_OUT_FRACTION = 0.15
DICT_DIR = Path("/usr/share/dict")
WORD_LISTS = {
    "english": "american-english",
    "german": "ngerman",
    "french": "french",
    "spanish": "spanish",
    "italian": "italian",
    "portuguese": "portuguese",
    "dutch": "dutch",
}
LABELS = list(WORD_LISTS)
WORD_PATTERN = re.compile(r"^[^\W\d_]+(?:['-][^\W\d_]+)*$")


class LangIdGRU(nn.Module):
    def __init__(self, num_classes: int = 7, vocab_size: int = 64, embedding: int = 32, hidden: int = 64):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding, padding_idx=0)
        self.gru = nn.GRU(embedding, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(2 * hidden, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        from torch.nn.utils.rnn import pack_padded_sequence

        # Packing makes the final states independent of padding, so an item's answer does not
        # depend on the other (longer or shorter) items in its batch.
        packed = pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, final = self.gru(packed)  # [directions, batch, hidden], in input order
        return self.classifier(self.dropout(torch.cat([final[0], final[1]], dim=1)))

    def to_onnx(self) -> bytes:
        """This network as an ONNX graph: ids [B, T] int64 and lengths [B] int64 -> logits [B, C].

        Built node by node from the weights rather than by `torch.onnx.export`: the TorchScript
        exporter fails on `pack_padded_sequence`, and ONNX's GRU takes the lengths directly
        (`sequence_lens`), which gives the same final states as packing. Two conventions differ:
        ONNX orders the gates z, r, n where PyTorch has r, z, n, and `linear_before_reset=1` is
        PyTorch's form of the n gate. Only the single-layer GRU this class builds is handled.
        """
        import numpy as np
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        if self.gru.num_layers != 1 or not self.gru.bidirectional:
            raise ValueError("to_onnx handles one bidirectional GRU layer")
        hidden = self.gru.hidden_size

        def weights(name: str) -> np.ndarray:
            tensor = getattr(self.gru, name).detach().float().cpu().numpy()
            return np.concatenate([tensor[hidden:2 * hidden], tensor[:hidden], tensor[2 * hidden:]])

        def both(name: str) -> np.ndarray:
            return np.stack([weights(name), weights(name + "_reverse")])

        arrays = {
            "embedding": self.embedding.weight.detach().float().cpu().numpy(),
            "W": both("weight_ih_l0"), "R": both("weight_hh_l0"),
            "B": np.concatenate([both("bias_ih_l0"), both("bias_hh_l0")], axis=1),
            "classifier_weight": self.classifier.weight.detach().float().cpu().numpy(),
            "classifier_bias": self.classifier.bias.detach().float().cpu().numpy(),
            "features_shape": np.array([0, 2 * hidden], dtype=np.int64),
        }
        nodes = [
            helper.make_node("Transpose", ["ids"], ["time_major_ids"], perm=[1, 0]),
            helper.make_node("Gather", ["embedding", "time_major_ids"], ["embedded"]),
            helper.make_node("Cast", ["lengths"], ["sequence_lens"], to=TensorProto.INT32),
            helper.make_node("GRU", ["embedded", "W", "R", "B", "sequence_lens"], ["", "final"],
                             hidden_size=hidden, direction="bidirectional", linear_before_reset=1),
            helper.make_node("Transpose", ["final"], ["batch_major"], perm=[1, 0, 2]),
            helper.make_node("Reshape", ["batch_major", "features_shape"], ["features"]),
            helper.make_node("Gemm", ["features", "classifier_weight", "classifier_bias"], ["logits"], transB=1),
        ]
        graph = helper.make_graph(
            nodes, "langid",
            [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "time"]),
             helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", self.classifier.out_features])],
            [numpy_helper.from_array(array, name) for name, array in arrays.items()])
        # IR version 8 / opset 17: what every onnxruntime of the last three years loads.
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                                  producer_name="models.langid")
        onnx.checker.check_model(model)
        return model.SerializeToString()


def read_words(language: str) -> list[str]:
    path = DICT_DIR / WORD_LISTS[language]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: install the Debian word lists (make system-deps)")
    words = {line.strip().lower() for line in path.read_text(encoding="utf-8").splitlines()}
    return sorted(w for w in words if 2 <= len(w) <= 24 and WORD_PATTERN.match(w))


def dataset() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(train, held_out) lists of (word, label index); disjoint words, ambiguous words dropped."""
    vocabularies = {lang: read_words(lang) for lang in LABELS}
    seen: dict[str, int] = {}
    for words in vocabularies.values():
        for w in words:
            seen[w] = seen.get(w, 0) + 1
    rng = random.Random(SEED)
    train, held_out = [], []
    for label, lang in enumerate(LABELS):
        unique = [w for w in vocabularies[lang] if seen[w] == 1]
        rng.shuffle(unique)
        chosen = unique[:WORDS_PER_LANGUAGE]
        cut = int(len(chosen) * (1 - HELD_OUT_FRACTION))
        train += [(w, label) for w in chosen[:cut]]
        held_out += [(w, label) for w in chosen[cut:]]
    return train, held_out


def phrases(samples: list[tuple[str, int]], count: int, rng: random.Random) -> list[tuple[str, int]]:
    """`count` phrases of 2-4 words, each phrase from one language's words in `samples`."""
    by_label: dict[int, list[str]] = {}
    for word, label in samples:
        by_label.setdefault(label, []).append(word)
    out = []
    for i in range(count):
        label = i % len(by_label)
        out.append((" ".join(rng.choices(by_label[label], k=rng.randint(2, 4))), label))
    return out


def held_out_texts() -> list[tuple[str, str]]:
    """Held-out words and phrases with their language names (for tests and load tests)."""
    _, held_out = dataset()
    rng = random.Random(SEED + 1)
    return [(t, LABELS[l]) for t, l in held_out + phrases(held_out, len(held_out) // 4, rng)]


def build_vocab(samples: list[tuple[str, int]]) -> dict[str, int]:
    chars = sorted({ch for text, _ in samples for ch in text} | {" "})
    return {ch: i + 2 for i, ch in enumerate(chars)}  # 0 = padding, 1 = unknown


def train(spec: Any, out_dir: Path) -> dict[str, Any]:
    import json

    from handlers.text import encode, pack_batch
    from models.training import Stopwatch, fit, save_artifacts, seed_everything

    seed_everything(SEED)
    with Stopwatch() as clock:
        train_words, held_out_words = dataset()
        rng = random.Random(SEED)
        samples = train_words + phrases(train_words, len(train_words) // 5, rng)
        vocab = build_vocab(samples)
        encoded = [(encode(text, vocab), label) for text, label in samples]
        arguments = {"vocab_size": len(vocab) + 2, **spec.arguments}
        model = LangIdGRU(num_classes=len(LABELS), **arguments)
        batch_size, epochs = 512, 6
        steps = (len(encoded) + batch_size - 1) // batch_size

        def batches(epoch: int):
            # Length-bucketed batches (shuffled within a length, then batch order shuffled): an RNN
            # step costs per time step, so mixing 3- and 40-character inputs wastes most of it.
            shuffle = random.Random(SEED + epoch)
            order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i][0]), shuffle.random()))
            chunks = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
            shuffle.shuffle(chunks)
            for chunk in chunks:
                ids, lengths = pack_batch([encoded[i][0] for i in chunk])
                yield (ids, lengths), torch.tensor([encoded[i][1] for i in chunk])

        fit(model, batches, lambda m, x: m(*x), epochs=epochs, lr=5e-3, desc="train langid", steps_per_epoch=steps)
        word_acc = evaluate(model, held_out_words, vocab)
        phrase_acc = evaluate(model, phrases(held_out_words, 2000, random.Random(SEED + 1)), vocab)
    metadata = {"held_out_accuracy": round(word_acc, 4), "held_out_phrase_accuracy": round(phrase_acc, 4),
                "held_out_samples": len(held_out_words), "train_samples": len(samples), "languages": LABELS,
                "train_seconds": clock.seconds, "seed": SEED, "dataset": "Debian word lists"}
    save_artifacts(out_dir, model, LABELS, metadata, arguments=arguments)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0, sort_keys=True))
    return metadata


def evaluate(model: nn.Module, samples: list[tuple[str, int]], vocab: dict[str, int]) -> float:
    from handlers.text import encode, pack_batch

    correct = 0
    with torch.inference_mode():
        for start in range(0, len(samples), 512):
            chunk = samples[start:start + 512]
            ids, lengths = pack_batch([encode(t, vocab) for t, _ in chunk])
            predicted = model(ids, lengths).argmax(dim=1)
            correct += int((predicted == torch.tensor([l for _, l in chunk])).sum())
    return correct / len(samples)
