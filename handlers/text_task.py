"""Text classification's part of the model core: decode one text, pack a batch, run the RNN
(or its ONNX Runtime session, `handler.backend: onnxruntime`)."""
from __future__ import annotations

import json
from typing import Any

import torch

from handlers.core import Loaded
from handlers.inputs import Input, Request, text_accepts
from handlers.onnx_backend import probe_sequences, sequence_backend
from handlers.runtime import to_device
from handlers.text import decode_text, pack_batch


class TextTask:
    def __init__(self, loaded: Loaded):
        self.settings = loaded.settings.text
        self.accepts = text_accepts(self.settings.max_bytes)
        self.device = loaded.device
        self.model = loaded.model
        self.vocab: dict[str, int] = json.loads((loaded.model_dir / "vocab.json").read_text())
        self.session = None
        if loaded.settings.backend == "onnxruntime":
            self.session = sequence_backend(loaded.name, self.model, self.device, loaded.threads, self.torch_forward,
                                            probe_sequences(max(self.vocab.values()) + 1))

    def decode(self, request: Input) -> torch.Tensor:
        return decode_text(request, self.settings, self.vocab)

    def warmup_request(self) -> Request:
        return Request(b"warm up", "text/plain")

    def collate(self, samples: list[torch.Tensor]) -> Any:
        # The ONNX Runtime session groups the sequences by length itself; PyTorch takes them padded.
        return samples if self.session is not None else pack_batch(samples)

    def forward(self, batch: Any) -> torch.Tensor:
        if self.session is not None:
            return self.session(batch)
        ids, lengths = batch
        return self.model(to_device(ids, self.device), lengths)

    def torch_forward(self, samples: list[torch.Tensor]) -> torch.Tensor:
        ids, lengths = pack_batch(samples)
        return self.model(to_device(ids, self.device), lengths).cpu()
