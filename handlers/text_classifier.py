"""TorchServe entry point for character-level text classification with an RNN (langid)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from handlers.base import ClassifierHandler
from handlers.text import TextSettings, decode_text_request, pack_batch


class TextClassifier(ClassifierHandler):
    def setup(self, config: dict[str, Any], model_dir: Path) -> None:
        self.settings = TextSettings.from_config(config.get("text"))
        self.vocab: dict[str, int] = json.loads((model_dir / "vocab.json").read_text())

    def decode(self, body: Any, content_type: str | None) -> torch.Tensor:
        return decode_text_request(body, content_type, self.settings, self.vocab)

    def collate(self, samples: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return pack_batch(samples)

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        ids, lengths = batch
        return self.model(self.to_device(ids), lengths)
