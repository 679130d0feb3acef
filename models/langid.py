"""`langid`: a character-level bidirectional GRU that names the language of a word or sentence.

Data (models/langid_data.py): sentences of Debian's translated manual pages and gettext message
catalogues, and words of Debian's word lists. Held-out sentences come from pages and catalogues
never seen in training, in any language.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.langid_data import LABELS, WORD_LISTS  # noqa: F401  (WORD_LISTS: loadtest/payloads.py)

SEED = 0
BATCH_SIZE = 256
EPOCHS = 6  # ~155 s of CPU time on one thread (the budget: 3 minutes on 2 cores); 5 gave 0.968 on 3-5 words


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


def held_out_texts() -> list[tuple[str, str]]:
    """Held-out sentences of every length and held-out words, with their language names (for
    tests and load tests): nothing here, nor any translation of it, was trained on."""
    from models.langid_data import split

    held_out = split(SEED).held_out
    return [(t, LABELS[label]) for samples in held_out.values() for t, label in samples]


def build_vocab(samples: list[tuple[str, int]]) -> dict[str, int]:
    chars = sorted({ch for text, _ in samples for ch in text} | {" "})
    return {ch: i + 2 for i, ch in enumerate(chars)}  # 0 = padding, 1 = unknown


def train(spec: Any, out_dir: Path) -> dict[str, Any]:
    from models.training import seed_everything

    seed_everything(SEED)
    # One thread: a GRU this small gains little from a second one, and on a shared 2-core
    # machine two spinning threads ran ~1 step/s against ~4 with one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(spec, out_dir)
    finally:
        torch.set_num_threads(threads)


def _train(spec: Any, out_dir: Path) -> dict[str, Any]:
    import json

    from handlers.text import encode, pack_batch
    from models.langid_data import debian_packages, split
    from models.training import Stopwatch, fit, save_artifacts

    with Stopwatch() as clock:
        data = split(SEED)
        vocab = build_vocab(data.train)
        encoded = [(encode(text, vocab), label) for text, label in data.train]
        arguments = {"vocab_size": len(vocab) + 2, **spec.arguments}
        model = LangIdGRU(num_classes=len(LABELS), **arguments)
        batch_size, epochs = BATCH_SIZE, EPOCHS
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
        accuracy = {name: round(evaluate(model, samples, vocab), 4) for name, samples in data.held_out.items()}
    metadata = {"held_out_accuracy": accuracy["3-5 words"], "held_out_accuracy_by_length": accuracy,
                "held_out_samples": {name: len(samples) for name, samples in data.held_out.items()},
                "train_samples": len(data.train), "languages": LABELS, "train_seconds": clock.seconds,
                "seed": SEED, "dataset": "Debian translated manual pages, gettext catalogues and word lists",
                "debian_packages": debian_packages()}
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
            correct += int((predicted == torch.tensor([label for _, label in chunk])).sum())
    return correct / len(samples)
