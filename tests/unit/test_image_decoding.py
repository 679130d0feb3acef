"""Image decoding and preprocessing, without a server."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from handlers.errors import InputError
from handlers.image import ImageSettings, decode_image_request
from handlers.image_decoding import open_image
from handlers.image_transforms import normalize_ink
from stackctl.catalog.specs import get_spec
from tests.imagegen import FORMAT_MODES, digit_image, encode, held_out

DIGITS = get_spec("digits").handler.image


@pytest.mark.parametrize("fmt,mode", [(f, m) for f, modes in FORMAT_MODES.items() for m in modes])
def test_every_format_and_mode_decodes_to_the_model_input(fmt: str, mode: str) -> None:
    image8, _ = held_out(1)[0]
    data = encode(digit_image(image8, 32, mode, dark_on_light=True), fmt)
    tensor = decode_image_request(data, f"image/{fmt.lower()}", DIGITS)
    assert tensor.shape == (1, 8, 8)
    assert tensor.dtype == torch.float32
    assert 0.0 <= float(tensor.min()) and float(tensor.max()) <= 16.0 + 1e-4
    assert float(tensor.max()) > 8.0, "the digit's ink must survive decoding"


def test_polarity_and_size_do_not_change_what_the_model_sees() -> None:
    image8, _ = held_out(1, seed=3)[0]
    reference = decode_image_request(encode(digit_image(image8, 64, "L", False), "PNG"), "image/png", DIGITS)
    for size in (8, 64, 512):
        for dark in (False, True):
            other = decode_image_request(encode(digit_image(image8, size, "L", dark), "PNG"), "image/png", DIGITS)
            assert torch.mean(torch.abs(other - reference)) < 1.6, (size, dark)


def test_json_base64_envelope_equals_raw_bytes() -> None:
    data = encode(digit_image(held_out(1)[0][0], 16, "L", True), "PNG")
    raw = decode_image_request(data, "image/png", DIGITS)
    wrapped = json.dumps({"image": base64.b64encode(data).decode()}).encode()
    assert torch.equal(decode_image_request(wrapped, "application/json", DIGITS), raw)
    url_safe = json.dumps({"image": base64.urlsafe_b64encode(data).decode().rstrip("=")}).encode()
    assert torch.equal(decode_image_request(url_safe, "application/json", DIGITS), raw)


def test_exif_orientation_is_applied() -> None:
    picture = Image.new("L", (40, 20), 255)
    picture.paste(0, (0, 0, 10, 20))  # dark bar on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", exif=exif.tobytes())
    settings = ImageSettings(color_mode="L", max_pixels=10_000)

    assert open_image(buffer.getvalue(), settings).size == (20, 40)


def test_decompression_bomb_is_rejected_from_the_header_without_decoding(monkeypatch) -> None:
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, format="PNG")  # 400 Mpx, a few KB on the wire

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixel data was decoded before the pixel limit was checked")

    # Every decoder path (load, draft, convert) goes through ImageFile.load.
    from PIL import ImageFile
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(InputError) as err:
        decode_image_request(buffer.getvalue(), "image/png", DIGITS)
    assert err.value.code == 413 and err.value.type == "image_too_large"


@pytest.mark.parametrize("body,content_type,code,error_type", [
    (b"", "image/png", 400, "empty_input"),
    (b"not an image at all", "image/png", 400, "invalid_image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "image/png", 400, "invalid_image"),
    (b'{"image": "***"}', "application/json", 400, "invalid_base64"),
    (b'{"image": 5}', "application/json", 400, "invalid_request"),
    (b'{"picture": "AAAA"}', "application/json", 400, "invalid_request"),
    (b'[1, 2]', "application/json", 400, "invalid_request"),
    (b'{"image": ', "application/json", 400, "invalid_json"),
    (b"hello", "text/plain", 415, "unsupported_media_type"),
])
def test_bad_image_requests_get_clear_errors(body: bytes, content_type: str, code: int, error_type: str) -> None:
    with pytest.raises(InputError) as err:
        decode_image_request(body, content_type, DIGITS)
    assert (err.value.code, err.value.type) == (code, error_type)
    assert err.value.body()["error"]["message"]


def test_truncated_png_is_a_400() -> None:
    data = encode(digit_image(held_out(1)[0][0], 64, "RGB", True), "PNG")
    with pytest.raises(InputError) as err:
        decode_image_request(data[: len(data) // 2], "image/png", DIGITS)
    assert err.value.code == 400 and err.value.type == "invalid_image"


def test_blank_image_gives_an_empty_canvas_not_an_error() -> None:
    gray = np.full((10, 10), 0.7, dtype=np.float32)
    assert normalize_ink(gray, (8, 8)).sum() == 0.0


def test_torchvision_style_settings_produce_normalised_224_crops() -> None:
    settings = ImageSettings.from_config({"color_mode": "RGB", "resize": 256, "center_crop": 224,
                                          "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
    data = encode(Image.new("RGB", (640, 480), (124, 116, 104)), "JPEG")
    tensor = decode_image_request(data, "image/jpeg", settings)
    assert tensor.shape == (3, 224, 224)
    assert torch.allclose(tensor.mean(dim=(1, 2)), torch.zeros(3), atol=0.05)


def test_eight_bit_fast_path_matches_the_float_path_for_torchvision_settings() -> None:
    from handlers.image import preprocess_image
    from handlers.image_transforms import resize_and_crop, to_float_array, to_tensor

    settings = ImageSettings.from_config({"color_mode": "RGB", "resize": 64, "center_crop": 56,
                                          "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]})
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    for mode in ("RGB", "RGBA", "P", "L", "CMYK"):
        image = open_image(encode(picture.convert(mode), "TIFF"), settings)
        fast = preprocess_image(image, settings)
        slow = resize_and_crop(to_tensor(to_float_array(image, "RGB")), settings)
        slow = (slow - torch.tensor(settings.mean).view(-1, 1, 1)) / torch.tensor(settings.std).view(-1, 1, 1)
        assert fast.shape == slow.shape == (3, 56, 56)
        assert torch.mean(torch.abs(fast - slow)) < 0.05, mode  # resampling in uint8 rounds once


PHOTO = ImageSettings.from_config({"color_mode": "RGB", "resize": 64, "center_crop": 56,
                                   "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})


def _photo_bodies() -> list[bytes]:
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    sixteen = Image.fromarray(rng.integers(0, 65536, (80, 70), dtype=np.uint16))  # mode I;16: no 8-bit path
    return [encode(rgb, "JPEG"), encode(rgb.convert("RGBA"), "PNG"), encode(rgb.resize((300, 200)), "WEBP"),
            encode(sixteen, "PNG")]


def test_photos_batch_as_uint8_and_normalise_per_batch_like_the_per_item_path() -> None:
    from handlers.image import decode_image_pixels, finish_batch, stack_pixels

    bodies = _photo_bodies()
    pixels = [decode_image_pixels(body, "application/octet-stream", PHOTO) for body in bodies]
    assert [(p.standardized, p.tensor.dtype) for p in pixels] == [(False, torch.uint8)] * 3 + [(True, torch.float32)]
    per_item = torch.stack([decode_image_request(body, "application/octet-stream", PHOTO) for body in bodies])
    for chosen in (pixels[:3], pixels):  # all 8-bit (stays uint8 until the batch step), and mixed
        stacked = stack_pixels(chosen, PHOTO)
        assert stacked.standardized == (len(chosen) != 3)
        assert stacked.tensor.dtype == (torch.uint8 if len(chosen) == 3 else torch.float32)
        batch = finish_batch(stacked, PHOTO)
        assert batch.dtype == torch.float32 and batch.shape == (len(chosen), 3, 56, 56)
        assert torch.allclose(batch, per_item[:len(chosen)], atol=1e-5)


def test_huge_digit_uploads_see_what_a_small_rendering_sees() -> None:
    # The ink family works on a <= 128 px copy: a 1-Mpx upload must still give the model the same 8x8.
    for seed in range(3):
        image8, _ = held_out(1, seed=seed)[0]
        small = decode_image_request(encode(digit_image(image8, 128, "L", True), "PNG"), "image/png", DIGITS)
        huge = decode_image_request(encode(digit_image(image8, 1024, "L", True), "PNG"), "image/png", DIGITS)
        assert torch.mean(torch.abs(huge - small)) < 0.5, seed


def _pillow_pixels(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    image.load()
    return np.asarray(image)


def test_still_webp_decodes_to_pillows_pixels_and_keeps_its_orientation() -> None:
    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8))
    translucent = rgb.convert("RGBA")
    translucent.putalpha(Image.linear_gradient("L").resize(rgb.size))
    for picture, options in ((rgb, {"quality": 80}), (translucent, {"lossless": True}),
                             (translucent, {"quality": 80}), (rgb, {"lossless": True})):
        data = encode(picture, "WEBP", **options)
        image = open_image(data, PHOTO)
        # An opaque WebP comes back as RGBX: libwebp's RGBA buffer wrapped without a copy.
        assert image.mode == {"RGB": "RGBX", "RGBA": "RGBA"}[picture.mode] and image.size == (90, 60)
        assert np.array_equal(np.asarray(image.convert(picture.mode)), _pillow_pixels(data)), (picture.mode, options)
    # EXIF orientation 6 (rotate 90 clockwise to display) travels with the fast path
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = open_image(encode(rgb, "WEBP", lossless=True, exif=exif.tobytes()), PHOTO)
    assert rotated.size == (60, 90)
    assert np.array_equal(np.asarray(rotated.convert("RGB")), np.asarray(rgb.transpose(Image.Transpose.ROTATE_270)))


def test_animated_and_corrupt_webp() -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    first = open_image(buffer.getvalue(), PHOTO)  # Pillow's decoder, first frame
    assert first.convert("RGB").getpixel((5, 5)) == (255, 0, 0)
    data = encode(Image.new("RGB", (64, 64), "white"), "WEBP", quality=80)
    with pytest.raises(InputError) as err:
        open_image(data[: len(data) // 2], PHOTO)
    assert err.value.code == 400
