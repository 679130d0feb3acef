"""TorchServe entry point for image classification (digits, or any torchvision classifier)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from handlers.base import ClassifierHandler
from handlers.image import Pixels, decode_image_pixels, finish_batch, preload_decoders, stack_pixels
from handlers.settings import HandlerSettings


class ImageClassifier(ClassifierHandler):
    def setup(self, settings: HandlerSettings, model_dir: Path) -> None:
        self.settings = settings.image
        preload_decoders()
        self.channels_last = settings.channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def decode(self, body: Any, content_type: str | None) -> Pixels:
        return decode_image_pixels(body, content_type, self.settings, self.device)

    def warmup_request(self) -> tuple[bytes, str]:
        # Dark ink on white, so the ink family finds a digit-like stroke; every family resizes it
        # to the model's input size, which is all the warm-up needs. A JPEG, so that on a GPU the
        # nvJPEG decoder is set up here too, not on the first photo served.
        image = Image.new("RGB", (64, 64), "white")
        ImageDraw.Draw(image).line([(16, 8), (40, 56)], fill="black", width=8)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        return buffer.getvalue(), "image/jpeg"

    def collate(self, samples: list[Pixels]) -> Pixels:
        if any(sample.tensor.device != samples[0].tensor.device for sample in samples):
            # GPU-decoded JPEGs beside others
            samples = [Pixels(self.to_device(s.tensor), s.standardized) for s in samples]
        return stack_pixels(samples, self.settings)

    def forward(self, batch: Pixels) -> torch.Tensor:
        # Photos cross to the device as uint8 (a quarter of the bytes) and are normalised there.
        inputs = finish_batch(Pixels(self.to_device(batch.tensor), batch.standardized), self.settings)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return self.model(inputs)
