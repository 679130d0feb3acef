"""Decoded image -> model input: colour and alpha, the ink or torchvision family, and the batch step.

What has been done to an image is carried in `Pixels.standardized`, not read from its dtype:
8-bit photos in the torchvision family stay uint8 until the batch step, everything else is
finished per item.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from handlers.image_settings import ImageSettings

# Working resolution of the ink family (digits): enough to find and centre a digit pooled to 8x8.
INK_WORKING_SIDE = 128
EIGHT_BIT_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"}
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


@dataclass(frozen=True)
class Pixels:
    """One image (CxHxW) or a batch (NxCxHxW) at the model's size, and how far it is prepared.

    standardized=False: raw 8-bit values (0..255, uint8) whose scaling and mean/std still run,
    once per batch, on the model's device (`finish_batch`); True: the float values the model takes.
    """

    tensor: torch.Tensor
    standardized: bool

    def to(self, device: torch.device) -> Pixels:
        return Pixels(self.tensor.to(device), self.standardized)


def image_pixels(image: Image.Image, settings: ImageSettings) -> Pixels:
    """A decoded image at the model's size, before the per-batch step (`finish_batch`).

    8-bit pictures in the torchvision family stay uint8: resizing and cropping in uint8 is ~3x
    cheaper than in float, and the mean/std arithmetic then runs once per batch, on the model's
    device, over a quarter of the bytes. The ink family and 16-bit or float images come back
    finished.
    """
    if settings.ink:
        # The ink family pools to a few pixels: a 128 px working copy holds all it needs, and the
        # centring arithmetic on a 1-Mpx upload was most of that request's cost.
        image = shrink_huge(image, longest=INK_WORKING_SIDE)
    else:
        image = shrink_huge(image, longest=max(256, (settings.resize or 0) * 2, settings.draft_side))
    if not settings.ink and image.mode in EIGHT_BIT_MODES:
        raw = resize_and_crop(to_tensor(np.array(flatten_alpha(image, settings.color_mode))), settings)
        return Pixels(raw.contiguous(), standardized=False)
    array = to_float_array(image, settings.color_mode)
    if settings.ink:
        if settings.size is None:
            raise ValueError("ink preprocessing needs `size`")
        height, width = settings.size
        array = normalize_ink(array, (height, width), **settings.ink)
        tensor = torch.from_numpy(array).unsqueeze(0)
    else:
        tensor = resize_and_crop(to_tensor(array), settings)
    return Pixels(standardize(tensor, settings, 1.0), standardized=True)


def stack_pixels(samples: list[Pixels], settings: ImageSettings) -> Pixels:
    """Items from `image_pixels` as one batch, raw when every item is (the common case)."""
    if len({sample.standardized for sample in samples}) == 1:
        return Pixels(torch.stack([s.tensor for s in samples]), samples[0].standardized)
    return Pixels(torch.stack([finish_item(s, settings) for s in samples]), standardized=True)


def finish_batch(batch: Pixels, settings: ImageSettings) -> torch.Tensor:
    """Stacked `image_pixels` (on any device) -> the float batch the model takes."""
    if batch.standardized:
        return batch.tensor
    return standardize(batch.tensor.float(), settings, 1.0 / 255.0)


def finish_item(pixels: Pixels, settings: ImageSettings) -> torch.Tensor:
    """One item's `image_pixels` -> the CxHxW float tensor the model takes."""
    return finish_batch(Pixels(pixels.tensor.unsqueeze(0), pixels.standardized), settings)[0]


def to_float_array(image: Image.Image, color_mode: str) -> np.ndarray:
    """Any Pillow mode -> float32 array in [0, 1], HxW (L) or HxWx3 (RGB), alpha over white."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if arr.max(initial=0) > 255 or image.mode.startswith("I;16") else 255.0
        gray = np.clip(arr / peak, 0.0, 1.0)
        return gray if color_mode == "L" else np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "F":
        gray = np.nan_to_num(np.asarray(image, dtype=np.float32))
        lo, hi = float(gray.min(initial=0)), float(gray.max(initial=0))
        gray = (gray - lo) / (hi - lo) if hi > lo else np.zeros_like(gray)
        return gray if color_mode == "L" else np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(flatten_alpha(image, color_mode), dtype=np.float32) / 255.0


def flatten_alpha(image: Image.Image, color_mode: str) -> Image.Image:
    """An 8-bit image in the model's colour mode, transparent areas composited over white."""
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    target = "L" if color_mode == "L" else "RGB"
    return image if image.mode == target else image.convert(target)  # CMYK, YCbCr, 1, RGB<->L ...


def shrink_huge(image: Image.Image, longest: int) -> Image.Image:
    """Box-reduce very large images early: the models look at <= 256 px, decoding cost is per pixel."""
    factor = max(image.size) // longest
    if factor >= 2 and image.mode not in WIDE_MODES + ("P",):
        return image.reduce(factor)
    return image


def normalize_ink(gray: np.ndarray, size: tuple[int, int], margin: float = 0.12,
                  auto_invert: bool = True, crop_to_content: bool = True) -> np.ndarray:
    """Grey image in [0,1] -> ink intensity in [0,1] at `size`, digit centred in a square box.

    Background polarity is read from the border (median), so black-on-white photos and the
    dataset's white-on-black both work; the digit's bounding box is padded to a square with a
    margin and area-pooled, like the 32x32 -> 8x8 block counts the dataset was made with.
    """
    border = np.concatenate([gray[0, :], gray[-1, :], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    ink = (1.0 - gray) if (auto_invert and background > 0.5) else gray
    ink = np.clip(ink - (1.0 - background if auto_invert and background > 0.5 else background), 0.0, None)
    peak = float(ink.max(initial=0.0))
    if peak <= 1e-6:
        return np.zeros(size, dtype=np.float32)
    ink = ink / peak
    if crop_to_content:
        rows = np.flatnonzero(ink.max(axis=1) > 0.2)
        cols = np.flatnonzero(ink.max(axis=0) > 0.2)
        ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = ink.shape
    side = max(h, w)
    pad = round(side * margin)
    canvas_side = side + 2 * pad
    canvas = np.zeros((canvas_side, canvas_side), dtype=np.float32)
    top, left = (canvas_side - h) // 2, (canvas_side - w) // 2
    canvas[top:top + h, left:left + w] = ink
    pooled = Image.fromarray(canvas).resize((size[1], size[0]), Image.Resampling.BOX)
    return np.array(pooled, dtype=np.float32)


def standardize(tensor: torch.Tensor, settings: ImageSettings, unit: float) -> torch.Tensor:
    """(tensor * unit * scale - mean) / std as one multiply and one add, per channel."""
    shape = (-1, 1, 1)
    std = torch.tensor(settings.std, dtype=torch.float32, device=tensor.device).view(shape)
    mean = torch.tensor(settings.mean, dtype=torch.float32, device=tensor.device).view(shape)
    return torch.addcmul(-mean / std, tensor, unit * settings.scale / std).contiguous()


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """HxW or HxWxC array -> CxHxW tensor sharing its memory where it can."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)


def resize_and_crop(tensor: torch.Tensor, settings: ImageSettings) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as F

    if settings.resize:
        tensor = F.resize(tensor, [settings.resize], antialias=True)
    if settings.center_crop:
        tensor = F.center_crop(tensor, [settings.center_crop])
    if settings.size:
        tensor = F.resize(tensor, list(settings.size), antialias=True)
    return tensor
