"""Test images: held-out digits rendered in every accepted format and mode."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from models.digits import held_out_digits

FORMAT_MODES = {
    "PNG": ["L", "LA", "P", "RGB", "RGBA", "I;16"],
    "JPEG": ["L", "RGB", "CMYK"],
    "GIF": ["P", "L"],
    "BMP": ["L", "P", "RGB"],
    "WEBP": ["RGB", "RGBA"],
    "TIFF": ["CMYK", "I;16", "RGB"],
}


def digit_image(image8: np.ndarray, size: int, mode: str, dark_on_light: bool) -> Image.Image:
    gray = np.clip(image8 / 16.0 * 255.0, 0, 255).astype(np.uint8)
    if dark_on_light:
        gray = 255 - gray
    picture = Image.fromarray(gray).resize((size, size), Image.Resampling.BILINEAR)
    if mode == "I;16":
        return Image.fromarray(np.asarray(picture).astype(np.uint16) * 257)
    if mode == "LA":
        return Image.merge("LA", [picture, Image.new("L", picture.size, 255)])
    if mode == "RGBA" and not dark_on_light:
        # transparent background, opaque light strokes: composited over white it must still read
        rgba = picture.convert("RGBA")
        rgba.putalpha(Image.new("L", picture.size, 255))
        return rgba
    return picture.convert(mode)


def encode(picture: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    kwargs = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    picture.save(buffer, format=fmt, **{**kwargs, **options})
    return buffer.getvalue()


def held_out(n: int, seed: int = 0) -> list[tuple[np.ndarray, int]]:
    images, labels = held_out_digits()
    rng = np.random.default_rng(seed)
    index = rng.choice(len(labels), size=n, replace=False)
    return [(images[i], int(labels[i])) for i in index]
