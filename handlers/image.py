"""Image input: bytes -> validated PIL image -> model tensor, driven by the spec's `image:` settings.

Two preprocessing families share the decoder:
* `ink` (digits): any polarity, any size; the digit is found, centred and pooled to 8x8, the way
  scikit-learn's digits were made (ink fraction per block, 0..16).
* torchvision style: resize shorter side, centre crop, mean/std (for resnet18, mobilenet_v3, ...).
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from handlers import errors, payload
from handlers.errors import InputError

# Pillow's own bomb guard warns (or raises) at its fixed limit; we enforce the configured limit
# from the header before decoding, so silence Pillow's check to keep one rule in one place.
Image.MAX_IMAGE_PIXELS = None

IMAGE_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/gif", "image/bmp", "image/x-ms-bmp",
               "image/webp", "image/tiff", "application/octet-stream", "", "application/x-www-form-urlencoded"}
ACCEPTED_FORMATS = {"PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "MPO"}
# Working resolution of the ink family (digits): enough to find and centre a digit pooled to 8x8.
INK_WORKING_SIDE = 128
EXIF_ORIENTATION = 0x0112
EIGHT_BIT_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"}


@dataclass(frozen=True)
class ImageSettings:
    """The `handler.image` section of a model spec, with defaults."""

    max_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 25_000_000
    min_side: int = 1
    color_mode: str = "RGB"                      # "L" or "RGB": what the model takes
    size: tuple[int, int] | None = None          # final (height, width) for the ink family
    resize: int | None = None                    # torchvision family: shorter side
    center_crop: int | None = None
    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    ink: dict[str, Any] = field(default_factory=dict)
    # Decode big JPEGs at reduced size (libjpeg DCT scaling): far cheaper, same answer.
    draft_side: int = 512
    # When the model runs on a GPU, decode RGB and greyscale JPEGs there (nvJPEG) and resize them
    # there (torchvision family only). Off by default: on an H100 it tripled mobilenet's in-process
    # limit, but served throughput at batchSize 4 stayed where the CPU decode had it, most likely
    # bound by the two workers' turns on the one GPU (bench/NOTES.md row 36). Measure first.
    gpu_decode: bool = False

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> "ImageSettings":
        cfg = dict(cfg or {})
        for key in ("size", "mean", "std"):
            if cfg.get(key) is not None:
                cfg[key] = tuple(cfg[key])
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"unknown image settings: {sorted(unknown)}")
        return cls(**cfg)

    @property
    def channels(self) -> int:
        return 1 if self.color_mode == "L" else 3


def read_image_bytes(body: Any, content_type: str | None, settings: ImageSettings) -> bytes:
    """The encoded image inside a request: the raw body, or base64 in JSON {"image": ...}."""
    if body is None or (isinstance(body, (bytes, bytearray, str)) and len(body) == 0):
        raise InputError(400, errors.EMPTY_INPUT, "request body is empty; send image bytes or "
                         'JSON {"image": "<base64>"}')
    if payload.is_json(content_type, body) or _looks_like_json(body):
        document = payload.parse_json(body)
        encoded = payload.json_field(document, "image", str, '{"image": "<base64>"}')
        data = payload.decode_base64(encoded, settings.max_bytes)
    elif isinstance(body, str):
        raise InputError(415, errors.UNSUPPORTED_MEDIA_TYPE,
                         f"expected image bytes or JSON, got text ({payload.media_type(content_type) or 'no content type'})")
    else:
        mt = payload.media_type(content_type)
        if mt.startswith("text/") or (mt and mt not in IMAGE_TYPES and not mt.startswith("image/")):
            raise InputError(415, errors.UNSUPPORTED_MEDIA_TYPE,
                             f"content type {mt!r} is not an image; send image/* bytes or application/json")
        data = bytes(body)
    if not data:
        raise InputError(400, errors.EMPTY_INPUT, "image payload is empty")
    if len(data) > settings.max_bytes:
        raise InputError(413, errors.PAYLOAD_TOO_LARGE,
                         f"image is {len(data)} bytes; the limit is {settings.max_bytes}")
    return data


def _looks_like_json(body: Any) -> bool:
    if isinstance(body, (bytes, bytearray)):
        head = bytes(body[:64]).lstrip()
        return head.startswith(b"{")
    return isinstance(body, str) and body.lstrip().startswith("{")


def open_image(data: bytes, settings: ImageSettings, draft_side: int | None = None) -> Image.Image:
    """Decode image bytes with the pixel limit checked from the header, before any pixel decode.

    JPEGs larger than 2 x `draft_side` (default: the setting) decode at reduced size.
    """
    return load_image(read_header(data, settings), data, draft_side or settings.draft_side)


def read_header(data: bytes, settings: ImageSettings) -> Image.Image:
    """Pillow's lazy view of the image: format, size and mode read, the limits checked, no pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InputError(400, errors.INVALID_IMAGE,
                         "body is not a recognised image (PNG, JPEG, GIF, BMP, WebP, TIFF)") from None
    except Exception as exc:  # Pillow raises many types for corrupt headers
        raise InputError(400, errors.INVALID_IMAGE, f"cannot read image header: {exc}") from None
    if image.format not in ACCEPTED_FORMATS:
        raise InputError(415, errors.UNSUPPORTED_MEDIA_TYPE, f"image format {image.format} is not accepted")
    width, height = image.size
    if width * height > settings.max_pixels:
        raise InputError(413, errors.IMAGE_TOO_LARGE,
                         f"image is {width}x{height} = {width * height} pixels; the limit is {settings.max_pixels}")
    if min(width, height) < settings.min_side:
        raise InputError(400, errors.IMAGE_TOO_SMALL, f"image is {width}x{height}; each side must be >= {settings.min_side}")
    return image


def load_image(image: Image.Image, data: bytes, draft_side: int) -> Image.Image:
    """Decode the pixels behind a checked header (`read_header`), upright per its EXIF orientation."""
    width, height = image.size
    if image.format == "JPEG" and max(width, height) > draft_side * 2:
        # Only shrinks by powers of two and never below draft_side on the short side.
        image.draft(image.mode, (draft_side, draft_side))
    try:
        if image.format == "WEBP" and getattr(image, "n_frames", 1) == 1:
            image = _decode_still_webp(image, data)
        else:
            image.seek(0)  # animated GIF/WebP: the first frame
            image.load()
        # In place: otherwise Pillow returns a full-size copy even when there is nothing to turn
        # (0.8 ms per megapixel, on every upload).
        ImageOps.exif_transpose(image, in_place=True)
    except Exception as exc:  # truncated or corrupt pixel data
        raise InputError(400, errors.INVALID_IMAGE, f"image data is corrupt or truncated: {exc}") from None
    return image


def decodes_on_device(header: Image.Image, data: bytes, settings: ImageSettings) -> bool:
    """Whether `device_jpeg_pixels` takes this image: a complete 8-bit RGB or greyscale JPEG for
    the torchvision family. Everything else (CMYK, multi-picture, the ink family) stays on Pillow.

    Pillow answers a truncated file with 400. Files without the end-of-image marker go to Pillow
    rather than relying on how nvJPEG treats missing data, so that answer is the same on every host.
    """
    return (settings.gpu_decode and not settings.ink and header.format == "JPEG"
            and header.mode in ("RGB", "L") and data.rstrip(b"\0").endswith(b"\xff\xd9"))


def device_jpeg_pixels(data: bytes, header: Image.Image, settings: ImageSettings,
                       device: torch.device) -> torch.Tensor | None:
    """`image_pixels` for a JPEG, decoded by torchvision on `device` (nvJPEG on CUDA) and resized
    there; None when the decoder refuses the file, so the caller falls back to Pillow, which either
    decodes it or answers with the exact error.

    On a GPU this moves the work that bounded mobilenet's throughput off the worker's one CPU
    thread: Pillow decoded 1,044 photos/s there, nvJPEG 4,690 at batch 1 (H100, bench/NOTES.md
    row 10). torchvision applies EXIF orientation on the CPU only, so it is applied here from the
    header Pillow already read.
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    mode = ImageReadMode.GRAY if settings.color_mode == "L" else ImageReadMode.RGB
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision 0.29 marks its decoders deprecated
            pixels = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=mode, device=device)
    except RuntimeError:
        return None
    orientation = header.getexif().get(EXIF_ORIENTATION, 1)
    return _resize_and_crop(orient(pixels, orientation), settings).contiguous()


def orient(pixels: torch.Tensor, orientation: int) -> torch.Tensor:
    """A CxHxW image as stored -> upright, for EXIF orientation 1-8 (what `exif_transpose` does)."""
    height_width = (-2, -1)
    if orientation == 2:
        return pixels.flip(-1)
    if orientation == 3:
        return pixels.flip(height_width)
    if orientation == 4:
        return pixels.flip(-2)
    if orientation == 5:
        return pixels.transpose(-2, -1)
    if orientation == 6:
        return pixels.rot90(-1, height_width)
    if orientation == 7:
        return pixels.transpose(-2, -1).flip(height_width)
    if orientation == 8:
        return pixels.rot90(1, height_width)
    return pixels


def preload_decoders() -> None:
    """Import what decoding uses lazily (torchvision) at worker start, not inside a request.

    A worker serving a custom model (digits) never imports torchvision otherwise, and the first
    WebP upload paid its 1.4 s import: the bench saw p99 1.5-2 s at 1 user until this ran in setup.
    """
    try:
        from torchvision.io import decode_webp  # noqa: F401
        from torchvision.transforms.v2 import functional  # noqa: F401
    except ImportError:  # a torchvision without them: the callers fall back or fail per request
        pass


def _decode_still_webp(header: Image.Image, data: bytes) -> Image.Image:
    """A still WebP through libwebp's plain decoder (torchvision) instead of Pillow's.

    Pillow decodes every WebP with libwebp's animation decoder onto an RGBA canvas: a 1024 px
    upload took 11-19 ms there and 4-6 ms here, with bit-identical pixels (bench/NOTES.md row 25).
    `header` is Pillow's already-checked view of the same bytes; its metadata (EXIF orientation,
    ICC profile) is carried over. torchvision 0.29 marks its decoders deprecated in favour of
    TorchCodec; we pin torchvision, and a release without them falls back to Pillow.
    """
    try:
        from torchvision.io import ImageReadMode, decode_webp
    except ImportError:
        header.load()
        return header
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pixels = decode_webp(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB_ALPHA)
    # libwebp writes interleaved RGBA, which Pillow can wrap without copying; a still image with
    # no alpha channel becomes RGBX (RGB with a padding byte), never a fake-opaque RGBA. Building
    # an RGB image instead meant a 1-Mpx copy and repack (2.2 ms).
    interleaved = pixels.permute(1, 2, 0).contiguous()  # already contiguous: no copy
    height, width = interleaved.shape[:2]
    mode = "RGBA" if header.mode == "RGBA" else "RGBX"
    image = Image.frombuffer(mode, (width, height), interleaved.numpy(), "raw", mode, 0, 1)
    image.info = dict(header.info)
    return image


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
    return np.asarray(_flatten_alpha(image, color_mode), dtype=np.float32) / 255.0


def _flatten_alpha(image: Image.Image, color_mode: str) -> Image.Image:
    """An 8-bit image in the model's colour mode, transparent areas composited over white."""
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    target = "L" if color_mode == "L" else "RGB"
    return image if image.mode == target else image.convert(target)  # CMYK, YCbCr, 1, RGB<->L ...


def _shrink_huge(image: Image.Image, longest: int) -> Image.Image:
    """Box-reduce very large images early: the models look at <= 256 px, decoding cost is per pixel."""
    factor = max(image.size) // longest
    if factor >= 2 and image.mode not in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F", "P"):
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
    pad = int(round(side * margin))
    canvas_side = side + 2 * pad
    canvas = np.zeros((canvas_side, canvas_side), dtype=np.float32)
    top, left = (canvas_side - h) // 2, (canvas_side - w) // 2
    canvas[top:top + h, left:left + w] = ink
    pooled = Image.fromarray(canvas).resize((size[1], size[0]), Image.Resampling.BOX)
    return np.array(pooled, dtype=np.float32)


def preprocess_image(image: Image.Image, settings: ImageSettings) -> torch.Tensor:
    """A decoded image -> the CxHxW float tensor the model takes."""
    return normalize_batch(image_pixels(image, settings).unsqueeze(0), settings)[0]


def image_pixels(image: Image.Image, settings: ImageSettings) -> torch.Tensor:
    """A decoded image at the model's size, before the per-batch step (`normalize_batch`).

    8-bit pictures in the torchvision family stay uint8 (CxHxW): resizing and cropping in uint8
    is ~3x cheaper than in float, and the mean/std arithmetic then runs once per batch, on the
    model's device, over a quarter of the bytes (bench/NOTES.md). Everything else (the ink family,
    16-bit and float images) comes back as the finished float tensor.
    """
    if settings.ink:
        # The ink family pools to a few pixels: a 128 px working copy holds all it needs, and the
        # centring arithmetic on a 1-Mpx upload was most of that request's cost.
        image = _shrink_huge(image, longest=INK_WORKING_SIDE)
    else:
        image = _shrink_huge(image, longest=max(256, (settings.resize or 0) * 2, settings.draft_side))
    if not settings.ink and image.mode in EIGHT_BIT_MODES:
        return _resize_and_crop(_to_tensor(np.array(_flatten_alpha(image, settings.color_mode))), settings).contiguous()
    array = to_float_array(image, settings.color_mode)
    if settings.ink:
        if settings.size is None:
            raise ValueError("ink preprocessing needs `size`")
        array = normalize_ink(array, tuple(settings.size), **settings.ink)
        tensor = torch.from_numpy(array).unsqueeze(0)
    else:
        tensor = _resize_and_crop(_to_tensor(array), settings)
    return _standardize(tensor, settings, 1.0)


def normalize_batch(batch: torch.Tensor, settings: ImageSettings) -> torch.Tensor:
    """Stacked `image_pixels` (NxCxHxW, on any device) -> the float batch the model takes."""
    if batch.dtype != torch.uint8:
        return batch  # already finished per item
    return _standardize(batch.float(), settings, 1.0 / 255.0)


def stack_pixels(samples: list[torch.Tensor], settings: ImageSettings) -> torch.Tensor:
    """Items from `image_pixels` as one batch: uint8 when every item is (the common case)."""
    if all(sample.dtype == torch.uint8 for sample in samples) or all(s.dtype != torch.uint8 for s in samples):
        return torch.stack(samples)
    return torch.stack([normalize_batch(s.unsqueeze(0), settings)[0] for s in samples])


def _standardize(tensor: torch.Tensor, settings: ImageSettings, unit: float) -> torch.Tensor:
    """(tensor * unit * scale - mean) / std as one multiply and one add, per channel."""
    shape = (-1, 1, 1)
    std = torch.tensor(settings.std, dtype=torch.float32, device=tensor.device).view(shape)
    mean = torch.tensor(settings.mean, dtype=torch.float32, device=tensor.device).view(shape)
    return torch.addcmul(-mean / std, tensor, unit * settings.scale / std).contiguous()


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)


def _resize_and_crop(tensor: torch.Tensor, settings: ImageSettings) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as F

    if settings.resize:
        tensor = F.resize(tensor, [settings.resize], antialias=True)
    if settings.center_crop:
        tensor = F.center_crop(tensor, [settings.center_crop])
    if settings.size:
        tensor = F.resize(tensor, list(settings.size), antialias=True)
    return tensor


def decode_image_request(body: Any, content_type: str | None, settings: ImageSettings) -> torch.Tensor:
    """The whole per-item path: request body -> model input tensor, or InputError."""
    return normalize_batch(decode_image_pixels(body, content_type, settings).unsqueeze(0), settings)[0]


def decode_image_pixels(body: Any, content_type: str | None, settings: ImageSettings,
                        device: torch.device | None = None) -> torch.Tensor:
    """Request body -> `image_pixels` (what the handler batches), or InputError.

    With a CUDA `device`, JPEGs that `decodes_on_device` accepts come back already on it.
    """
    data = read_image_bytes(body, content_type, settings)
    header = read_header(data, settings)
    if device is not None and device.type == "cuda" and decodes_on_device(header, data, settings):
        pixels = device_jpeg_pixels(data, header, settings, device)
        if pixels is not None:
            return pixels  # else the header, still unread past its metadata, goes on to Pillow
    image = load_image(header, data, INK_WORKING_SIDE if settings.ink else settings.draft_side)
    try:
        return image_pixels(image, settings)
    except InputError:
        raise
    except (ValueError, OSError) as exc:
        raise InputError(400, errors.INVALID_IMAGE, f"cannot convert image: {exc}") from None
