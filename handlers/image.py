"""Image input, one request at a time: judged request -> checked, decoded image -> `Pixels` for the batch.

Decoding lives in `image_decoding`, what is done to the pixels in `image_transforms`, the spec's
settings in `image_settings`; this module is the path that joins them, used by the model core,
by training (models/digits.py) and by the benchmarks.
"""
from __future__ import annotations

from typing import Any

import torch

from handlers import errors
from handlers.errors import InputError
from handlers.image_decoding import (
    decodes_on_device,
    device_jpeg_pixels,
    load_image,
    preload_decoders,
    read_header,
    read_image_bytes,
)
from handlers.image_settings import ImageSettings
from handlers.image_transforms import INK_WORKING_SIDE, Pixels, finish_batch, finish_item, image_pixels, stack_pixels
from handlers.inputs import IMAGE, Input, read_body

__all__ = ["ImageSettings", "Pixels", "decode_image_pixels", "decode_pixels", "decode_image_request", "finish_batch",
           "preload_decoders", "preprocess_image", "stack_pixels"]


def decode_pixels(request: Input, settings: ImageSettings, device: torch.device | None = None) -> Pixels:
    """A judged request -> `image_pixels` (what the model core batches), or InputError.

    With a CUDA `device`, JPEGs that `decodes_on_device` accepts come back already on it.
    """
    data = read_image_bytes(request, settings)
    header = read_header(data, settings)
    if device is not None and device.type == "cuda" and decodes_on_device(header, data, settings):
        pixels = device_jpeg_pixels(data, header, settings, device)
        if pixels is not None:
            return Pixels(pixels, standardized=False)
        # else the header, still unread past its metadata, goes on to Pillow
    image = load_image(header, data, INK_WORKING_SIDE if settings.ink else settings.draft_side)
    try:
        return image_pixels(image, settings)
    except InputError:
        raise
    except (ValueError, OSError) as exc:
        raise InputError(400, errors.INVALID_IMAGE, f"cannot convert image: {exc}") from None


def decode_image_pixels(body: Any, content_type: str | None, settings: ImageSettings,
                        device: torch.device | None = None) -> Pixels:
    """`decode_pixels` for a bare body and its Content-Type, judged by the input stage first."""
    return decode_pixels(read_body(body, content_type, IMAGE), settings, device)


def decode_image_request(body: Any, content_type: str | None, settings: ImageSettings) -> torch.Tensor:
    """The whole per-item path: request body -> model input tensor (CxHxW float), or InputError."""
    return finish_item(decode_image_pixels(body, content_type, settings), settings)


def preprocess_image(image: Any, settings: ImageSettings) -> torch.Tensor:
    """A decoded PIL image -> the CxHxW float tensor the model takes (training uses this)."""
    return finish_item(image_pixels(image, settings), settings)
