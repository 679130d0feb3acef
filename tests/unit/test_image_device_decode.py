"""The image handler's on-device JPEG path (`handlers.image.device_jpeg_pixels`).

On a GPU host it runs nvJPEG; the same function with device="cpu" runs torchvision's libjpeg
decoder, so its routing, EXIF orientation and resize/crop are checked here on every machine. The
tests marked `cuda` need a GPU and skip elsewhere (CI has none); `make bench` on a GPU host and
the lent-GPU runs in bench/results/gpu/ exercise them.
"""
from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from bench.workloads import photo_payloads
from handlers.errors import InputError
from handlers.image import ImageSettings, decode_image_pixels
from handlers.image_decoding import decodes_on_device, device_jpeg_pixels, orient, read_header

PHOTO = ImageSettings.from_config({"color_mode": "RGB", "resize": 64, "center_crop": 56, "mean": [0.5] * 3,
                                   "std": [0.25] * 3, "min_side": 8, "gpu_decode": True})
CPU = torch.device("cpu")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (nvJPEG)")


def _jpeg(picture: Image.Image, orientation: int = 1, **options) -> bytes:
    buffer = io.BytesIO()
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif.tobytes()
    picture.save(buffer, "JPEG", quality=95, **options)
    return buffer.getvalue()


def _photo(size: tuple[int, int] = (90, 60)) -> Image.Image:
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_turns_pixels_the_way_pillow_does(orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    picture = Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    picture.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(picture)).transpose(2, 0, 1)
    turned = orient(torch.from_numpy(np.asarray(picture).transpose(2, 0, 1).copy()), orientation)
    assert np.array_equal(turned.numpy(), expected)


@pytest.mark.parametrize("orientation,mode", [(1, "RGB"), (6, "RGB"), (3, "L"), (8, "RGB")])
def test_device_path_gives_pillows_pixels(orientation: int, mode: str) -> None:
    data = _jpeg(_photo().convert(mode), orientation)
    pillow = decode_image_pixels(data, "image/jpeg", PHOTO).tensor
    device = device_jpeg_pixels(data, read_header(data, PHOTO), PHOTO, CPU)
    assert device.shape == pillow.shape == (3, 56, 56) and device.dtype == torch.uint8
    # Same libjpeg output and resize; Pillow's RGB conversion of a greyscale file rounds alike.
    assert (device.int() - pillow.int()).abs().max() <= 1


def test_only_complete_rgb_and_grey_jpegs_for_the_torchvision_family_go_to_the_device() -> None:
    good = _jpeg(_photo())
    assert decodes_on_device(read_header(good, PHOTO), good, PHOTO)
    truncated = good[: len(good) * 2 // 3]
    assert not decodes_on_device(read_header(truncated, PHOTO), truncated, PHOTO)
    cmyk = _jpeg(_photo().convert("CMYK"))
    assert not decodes_on_device(read_header(cmyk, PHOTO), cmyk, PHOTO)
    png = io.BytesIO()
    _photo().save(png, "PNG")
    assert not decodes_on_device(read_header(png.getvalue(), PHOTO), png.getvalue(), PHOTO)
    off = replace(PHOTO, gpu_decode=False)
    assert not decodes_on_device(read_header(good, off), good, off)
    ink = ImageSettings(color_mode="L", size=(8, 8), ink={"margin": 0.1})
    assert not decodes_on_device(read_header(good, ink), good, ink)


def test_a_file_the_device_decoder_refuses_is_left_to_pillow() -> None:
    good = _jpeg(_photo())
    # A Huffman table whose code counts add up to more than 256: Pillow's header reader skips the
    # table, libjpeg refuses it ("Bogus Huffman table definition").
    table = good.index(b"\xff\xc4") + 5  # marker, 2-byte length, class/id byte: then 16 counts
    broken = good[:table] + b"\xff" * 16 + good[table + 16:]
    header = read_header(broken, PHOTO)
    assert decodes_on_device(header, broken, PHOTO)
    assert device_jpeg_pixels(broken, header, PHOTO, CPU) is None
    with pytest.raises(InputError) as err:
        decode_image_pixels(broken, "image/jpeg", PHOTO)
    assert err.value.code == 400


@cuda
def test_on_a_gpu_jpegs_decode_there_and_everything_else_as_before() -> None:
    gpu = torch.device("cuda", 0)
    photos = [p.body for p in photo_payloads(count=8)]
    for data in photos + [_jpeg(_photo(), 6), _jpeg(_photo().convert("L"))]:
        on_gpu = decode_image_pixels(data, "image/jpeg", PHOTO, gpu).tensor
        pillow = decode_image_pixels(data, "image/jpeg", PHOTO).tensor
        assert on_gpu.device.type == "cuda" and on_gpu.shape == pillow.shape
        # nvJPEG's IDCT and chroma upsampling differ from libjpeg's by a few levels.
        assert (on_gpu.cpu().float() - pillow.float()).abs().mean() < 2.0
    png = io.BytesIO()
    _photo().save(png, "PNG")
    assert decode_image_pixels(png.getvalue(), "image/png", PHOTO, gpu).tensor.device.type == "cpu"
    truncated = photos[0][: len(photos[0]) // 2]
    with pytest.raises(InputError) as err:
        decode_image_pixels(truncated, "image/jpeg", PHOTO, gpu)
    assert err.value.code == 400
    huge = replace(PHOTO, max_pixels=1000)
    with pytest.raises(InputError) as err:
        decode_image_pixels(photos[0], "image/jpeg", huge, gpu)
    assert err.value.code == 413


@cuda
def test_a_gpu_worker_answers_a_batch_that_mixes_gpu_and_cpu_decoded_items() -> None:
    from bench.workloads import ensure_bench_archive, workloads
    from stackctl.catalog.inprocess import InProcessModel, Request

    model = InProcessModel(ensure_bench_archive(workloads(["mobilenet"])[0].spec), gpu_id=0)
    model.model_yaml_config["handler"]["image"]["gpu_decode"] = True
    model.handler.initialize(model.context(4))
    photos = [p.body for p in photo_payloads(count=2)]
    png = io.BytesIO()
    Image.open(io.BytesIO(photos[0])).save(png, "PNG")
    requests = [Request(photos[0], "image/jpeg"), Request(png.getvalue(), "image/png"),
                Request(photos[1][:200], "image/jpeg"), Request(photos[1], "image/jpeg")]
    statuses = [status for status, _ in model.predict(requests)]
    assert statuses == [200, 200, 400, 200]
