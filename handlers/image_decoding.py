"""A judged request (`handlers.inputs.Input`) -> decoded image: the encoded bytes, the checked
header, then the pixels.

The pixel limit is checked from the header before any pixel is decoded (decompression bombs).
Pixels come from Pillow, from libwebp directly for still WebP, or, for JPEGs on a GPU when the
spec asks for it, from nvJPEG (`device_jpeg_pixels`).
"""
from __future__ import annotations

import io
import warnings

import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from handlers import errors, payload
from handlers.errors import InputError
from handlers.image_settings import ImageSettings
from handlers.image_transforms import resize_and_crop
from handlers.inputs import Input

# Pillow's own bomb guard warns (or raises) at its fixed limit; we enforce the configured limit
# from the header before decoding, so silence Pillow's check to keep one rule in one place.
Image.MAX_IMAGE_PIXELS = None

ACCEPTED_FORMATS = {"PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "MPO"}
EXIF_ORIENTATION = 0x0112


def read_image_bytes(request: Input, settings: ImageSettings) -> bytes:
    """The encoded image inside a judged request: the raw body, or base64 in JSON {"image": ...}."""
    if request.kind == "json":
        document = payload.parse_json(request.body)
        encoded = payload.json_field(document, "image", str, '{"image": "<base64>"}')
        data = payload.decode_base64(encoded, settings.max_bytes)
    else:
        data = bytes(request.body)
    if not data:
        raise InputError(400, errors.EMPTY_INPUT, "image payload is empty")
    if len(data) > settings.max_bytes:
        raise InputError(413, errors.PAYLOAD_TOO_LARGE,
                         f"image is {len(data)} bytes; the limit is {settings.max_bytes}")
    return data


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
    except Exception as exc:  # noqa: BLE001  (Pillow raises many types for corrupt headers)
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
    except Exception as exc:  # noqa: BLE001  (decoders raise many types for truncated or corrupt pixel data)
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
    thread: Pillow decoded 1,044 photos/s there, nvJPEG 4,690 at batch 1 (H100). torchvision
    applies EXIF orientation on the CPU only, so it is applied here from the header Pillow
    already read.
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
    return resize_and_crop(orient(pixels, orientation), settings).contiguous()


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
    upload took 11-19 ms there and 4-6 ms here, with bit-identical pixels.
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
