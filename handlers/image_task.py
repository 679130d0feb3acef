"""Image classification's part of the model core: decode one image, stack a batch, run the model."""
from __future__ import annotations

import io

import torch
from PIL import Image, ImageDraw

from handlers.core import Loaded
from handlers.image import Pixels, decode_pixels, finish_batch, preload_decoders, stack_pixels
from handlers.inputs import IMAGE, Input, Request
from handlers.runtime import to_device


class ImageTask:
    accepts = IMAGE

    def __init__(self, loaded: Loaded):
        self.settings = loaded.settings.image
        self.device = loaded.device
        preload_decoders()
        self.channels_last = loaded.settings.channels_last
        self.model = loaded.model
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def decode(self, request: Input) -> Pixels:
        return decode_pixels(request, self.settings, self.device)

    def warmup_request(self) -> Request:
        # Dark ink on white, so the ink family finds a digit-like stroke; every family resizes it
        # to the model's input size, which is all the warm-up needs. A JPEG, so that on a GPU the
        # nvJPEG decoder is set up here too, not on the first photo served.
        image = Image.new("RGB", (64, 64), "white")
        ImageDraw.Draw(image).line([(16, 8), (40, 56)], fill="black", width=8)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        return Request(buffer.getvalue(), "image/jpeg")

    def collate(self, samples: list[Pixels]) -> Pixels:
        if any(sample.tensor.device != samples[0].tensor.device for sample in samples):
            # GPU-decoded JPEGs beside others
            samples = [Pixels(to_device(s.tensor, self.device), s.standardized) for s in samples]
        return stack_pixels(samples, self.settings)

    def forward(self, batch: Pixels) -> torch.Tensor:
        # Photos cross to the device as uint8 (a quarter of the bytes) and are normalised there.
        inputs = finish_batch(Pixels(to_device(batch.tensor, self.device), batch.standardized), self.settings)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return self.model(inputs)
