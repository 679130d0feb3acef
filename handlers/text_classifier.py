"""TorchServe entry point for character-level text classification with an RNN (langid)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from handlers.base import ClassifierHandler
from handlers.onnx_backend import probe_sequences, sequence_backend
from handlers.settings import HandlerSettings
from handlers.text import decode_text_request, pack_batch


class TextClassifier(ClassifierHandler):
    form_field = "text"  # curl -F text=... / --data-urlencode text=...

    def setup(self, settings: HandlerSettings, model_dir: Path) -> None:
        self.settings = settings.text
        self.vocab: dict[str, int] = json.loads((model_dir / "vocab.json").read_text())
        self.session = None
        if settings.backend == "onnxruntime":
            self.session = sequence_backend(self.name, self.model, self.device, self.threads, self.torch_forward,
                                            probe_sequences(max(self.vocab.values()) + 1))

    def decode(self, body: Any, content_type: str | None) -> torch.Tensor:
        return decode_text_request(body, content_type, self.settings, self.vocab)

    def warmup_request(self) -> tuple[bytes, str]:
        return b"warm up", "text/plain"

    def collate(self, samples: list[torch.Tensor]) -> Any:
        # The ONNX Runtime session groups the sequences by length itself; PyTorch takes them padded.
        return samples if self.session is not None else pack_batch(samples)

    def forward(self, batch: Any) -> torch.Tensor:
        if self.session is not None:
            return self.session(batch)
        ids, lengths = batch
        return self.model(self.to_device(ids), lengths)

    def torch_forward(self, samples: list[torch.Tensor]) -> torch.Tensor:
        ids, lengths = pack_batch(samples)
        return self.model(self.to_device(ids), lengths).cpu()
