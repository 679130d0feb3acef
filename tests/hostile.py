"""The hostile-input table: each case is a request body, its content type and the answer it must get.

One table drives the live-server suite (tests/integration/test_hostile_inputs.py), the in-process
batch test and the table in docs/hostile-inputs.md, so the three never disagree. Bodies are built
lazily (`body()`), because a few of them (the decompression bombs) take a moment to make.
"""
from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from tests.imagegen import digit_image, encode, held_out


@dataclass(frozen=True)
class Case:
    id: str
    model: str
    make: Callable[[], bytes]
    content_type: str
    status: int
    error_type: str | None          # None: a 200 answer
    description: str
    # Set when the server does not give this answer yet, with the reason (the live suite expects
    # the failure, strictly, so a fix shows up as a test to update).
    known_issue: str | None = None

    def body(self) -> bytes:
        return self.make()


# --- images ------------------------------------------------------------------------------------
@cache
def digit(size: int = 28, mode: str = "L", fmt: str = "PNG") -> bytes:
    image, _ = held_out(1, seed=5)[0]
    return encode(digit_image(image, size, mode, dark_on_light=True), fmt)


def digit_label() -> str:
    return str(held_out(1, seed=5)[0][1])


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@cache
def png_bomb(side: int = 16_000) -> bytes:
    """A valid greyscale PNG of side x side pixels (256 Mpx for 16000): ~250 KB on the wire,
    256 MB once decoded. Built row by row so making it never holds the pixels in memory."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + zero pixels
    parts = [compressor.compress(row) for _ in range(side)]
    data = b"".join(parts) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny (wrong) IDAT: header-only tricks."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\x00\x00"))
            + _chunk(b"IEND", b""))


@cache
def gif_bomb() -> bytes:
    """A 1-frame GIF whose logical screen and frame claim 65535 x 65535 (4.3 Gpx) in ~40 bytes."""
    small = io.BytesIO()
    Image.new("P", (1, 1)).save(small, format="GIF")
    data = bytearray(small.getvalue())
    data[6:10] = struct.pack("<HH", 65535, 65535)              # logical screen
    frame = data.index(b",")                                   # image descriptor
    data[frame + 5:frame + 9] = struct.pack("<HH", 65535, 65535)
    return bytes(data)


@cache
def jpeg_bomb() -> bytes:
    """A small JPEG whose SOF header claims 65000 x 65000 pixels."""
    data = bytearray(digit(8, "L", "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)
    return bytes(data)


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: max(16, int(len(data) * keep))]


@cache
def png_corrupt_idat() -> bytes:
    """A valid PNG signature and IHDR, then image data that is not zlib (CRC fixed, so only the
    decompressor can notice)."""
    good = digit(64, "L", "PNG")
    start = good.index(b"IDAT") - 4
    length = struct.unpack(">I", good[start:start + 4])[0]
    garbage = bytes((b * 7 + 13) % 256 for b in range(length))
    return good[:start] + _chunk(b"IDAT", garbage) + good[start + 12 + length:]


@cache
def jpeg_corrupt_huffman() -> bytes:
    """JPEG markers and dimensions intact, the Huffman table (DHT) overwritten: the header parses,
    the pixel decode fails."""
    data = bytearray(digit(64, "L", "JPEG"))
    dht = data.index(b"\xff\xc4")
    length = int.from_bytes(data[dht + 2:dht + 4], "big")
    data[dht + 4:dht + 2 + length] = b"\xff" * (length - 2)
    return bytes(data)


@cache
def jpeg_corrupt_scan() -> bytes:
    """JPEG headers intact, the entropy-coded scan overwritten by garbage."""
    good = bytearray(digit(64, "L", "JPEG"))
    sos = good.index(b"\xff\xda")
    for i in range(sos + 20, len(good) - 2):
        good[i] = 0xFF if i % 2 else 0xD9
    return bytes(good)


@cache
def animated_gif() -> bytes:
    image, _ = held_out(1, seed=5)[0]
    frames = [digit_image(image, 28, "P", dark_on_light=True)] + [Image.new("P", (28, 28), i * 40) for i in range(1, 4)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


@cache
def exif_rotated_jpeg() -> bytes:
    """The digit stored rotated by 90 degrees with EXIF Orientation=6 ("rotate 90 CW to view"):
    only a decoder that honours EXIF sees it upright."""
    image, _ = held_out(1, seed=5)[0]
    upright = digit_image(image, 64, "L", dark_on_light=True)
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


@cache
def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (1, 1), 255).save(buffer, format="PNG")
    return buffer.getvalue()


@cache
def ppm_image() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 0).save(buffer, format="PPM")
    return buffer.getvalue()


def b64_json(data: bytes, prefix: str = "") -> bytes:
    return json.dumps({"image": prefix + base64.b64encode(data).decode()}).encode()


def nested_json(depth: int = 100_000) -> bytes:
    return b"[" * depth + b"]" * depth


def random_bytes(n: int, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def text_json(value: object) -> bytes:
    return json.dumps({"text": value}).encode()


def multipart(field: str, value: bytes, boundary: str = "hostile-boundary") -> bytes:
    """A multipart/form-data body with one text field, as `curl -F field=value` sends it."""
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n".encode()
            + value + f"\r\n--{boundary}--\r\n".encode())


# --- the table -----------------------------------------------------------------------------------
PNG, JPEG, JSON_T, TEXT = "image/png", "image/jpeg", "application/json", "text/plain; charset=utf-8"
FORM, MULTIPART = "application/x-www-form-urlencoded", "multipart/form-data; boundary=hostile-boundary"
# Form-urlencoded bodies reach the handlers intact through the front door (nginx passes them on
# as application/octet-stream; docs/hostile-inputs.md, "Form bodies").

DIGITS_CASES = [
    Case("empty-body", "digits", lambda: b"", PNG, 400, "empty_input", "empty body"),
    Case("empty-json-body", "digits", lambda: b"", JSON_T, 400, "empty_input", "empty body sent as JSON"),
    Case("text-content-type", "digits", lambda: b"hello", "text/plain", 415, "unsupported_media_type",
         "text/plain body"),
    Case("pdf-content-type", "digits", lambda: b"%PDF-1.4 ...", "application/pdf", 415, "unsupported_media_type",
         "a content type that is not an image"),
    Case("not-an-image", "digits", lambda: b"this is not an image at all", PNG, 400, "invalid_image",
         "bytes that are not an image"),
    Case("random-bytes", "digits", lambda: random_bytes(4096), "application/octet-stream", 400, "invalid_image",
         "4 KiB of random bytes"),
    Case("png-signature-only", "digits", lambda: b"\x89PNG\r\n\x1a\n", PNG, 400, "invalid_image",
         "PNG signature and nothing else"),
    Case("truncated-png", "digits", lambda: truncated(digit(64)), PNG, 400, "invalid_image", "PNG cut in half"),
    Case("truncated-jpeg", "digits", lambda: truncated(digit(64, "L", "JPEG")), JPEG, 400, "invalid_image",
         "JPEG cut in half"),
    Case("png-corrupt-data", "digits", png_corrupt_idat, PNG, 400, "invalid_image",
         "valid PNG header, corrupt compressed data"),
    Case("jpeg-corrupt-huffman", "digits", jpeg_corrupt_huffman, JPEG, 400, "invalid_image",
         "valid JPEG header, corrupt Huffman table"),
    # JPEG decoders conceal damaged entropy-coded data by design (libjpeg warns, keeps going): the
    # answer is a prediction on a damaged picture, like any photo with bit errors, never a 5xx.
    Case("jpeg-corrupt-scan", "digits", jpeg_corrupt_scan, JPEG, 200, None,
         "valid JPEG header, garbage scan data (decoded with concealment)"),
    Case("png-bomb-256mpx", "digits", png_bomb, PNG, 413, "image_too_large",
         "decompression bomb: 250 KB PNG of 16000x16000 px, refused from the header"),
    Case("gif-bomb-4gpx", "digits", gif_bomb, "image/gif", 413, "image_too_large",
         "~40-byte GIF claiming 65535x65535 px"),
    Case("jpeg-bomb-4gpx", "digits", jpeg_bomb, JPEG, 413, "image_too_large", "small JPEG claiming 65000x65000 px"),
    Case("png-zero-width", "digits", lambda: png_with_size(0, 28), PNG, 400, "invalid_image",
         "PNG header with width 0"),
    Case("png-1x1", "digits", tiny_png, PNG, 200, None, "1x1 white PNG (a blank image still gets an answer)"),
    Case("jpeg-1x1", "digits", lambda: encode(Image.new("RGB", (1, 1), (0, 0, 0)), "JPEG"), JPEG, 200, None,
         "1x1 JPEG"),
    Case("animated-gif", "digits", animated_gif, "image/gif", 200, None, "animated GIF (first frame is used)"),
    Case("png-16-bit", "digits", lambda: digit(28, "I;16", "PNG"), PNG, 200, None, "16-bit greyscale PNG"),
    Case("tiff-16-bit", "digits", lambda: digit(28, "I;16", "TIFF"), "image/tiff", 200, None, "16-bit TIFF"),
    Case("jpeg-cmyk", "digits", lambda: digit(28, "CMYK", "JPEG"), JPEG, 200, None, "CMYK JPEG"),
    Case("tiff-cmyk", "digits", lambda: digit(28, "CMYK", "TIFF"), "image/tiff", 200, None, "CMYK TIFF"),
    Case("jpeg-exif-rotated", "digits", exif_rotated_jpeg, JPEG, 200, None,
         "JPEG stored rotated with EXIF Orientation=6 (classified upright)"),
    Case("ppm-format", "digits", ppm_image, "image/x-portable-pixmap", 415, "unsupported_media_type",
         "an image format that is not accepted (PPM)"),
    Case("base64-invalid", "digits", lambda: b'{"image": "!!!not base64!!!"}', JSON_T, 400, "invalid_base64",
         "invalid base64"),
    Case("base64-not-image", "digits", lambda: b64_json(b"hello world"), JSON_T, 400, "invalid_image",
         "valid base64 of bytes that are not an image"),
    Case("base64-empty", "digits", lambda: b'{"image": ""}', JSON_T, 400, "empty_input", "empty base64 string"),
    Case("base64-data-url", "digits", lambda: b64_json(digit(), "data:image/png;base64,"), JSON_T, 200, None,
         "base64 with a data: URL prefix"),
    Case("json-invalid", "digits", lambda: b'{"image": ', JSON_T, 400, "invalid_json", "JSON cut short"),
    Case("json-array", "digits", lambda: b"[1, 2, 3]", JSON_T, 400, "invalid_request", "JSON array, not object"),
    Case("json-wrong-field", "digits", lambda: b'{"img": "abc"}', JSON_T, 400, "invalid_request",
         "JSON object without 'image'"),
    Case("json-image-number", "digits", lambda: b'{"image": 123}', JSON_T, 400, "invalid_request",
         "'image' is a number"),
    Case("json-image-null", "digits", lambda: b'{"image": null}', JSON_T, 400, "invalid_request", "'image' is null"),
    Case("json-not-utf8", "digits", lambda: b'{"image": "\xff\xfe"}', JSON_T, 400, "invalid_encoding",
         "JSON body that is not UTF-8"),
    Case("json-deeply-nested", "digits", nested_json, JSON_T, 400, "invalid_json", "100000 nested JSON arrays"),
    Case("form-urlencoded-png", "digits", digit, FORM, 200, None,
         "PNG bytes labelled as a form: curl --data-binary @digit.png without -H"),
    Case("form-urlencoded-not-image", "digits", lambda: b"this is not an image", FORM, 400, "invalid_image",
         "bytes that are not an image, labelled as a form: curl -d 'this is not an image' (the hint names -H)"),
    Case("form-urlencoded-json", "digits", lambda: b64_json(digit()), FORM, 200, None,
         "JSON labelled as a form: curl -d '{\"image\": ...}' without -H"),
    Case("multipart-text-field", "digits", lambda: multipart("image", base64.b64encode(digit())), MULTIPART, 415,
         "unsupported_media_type", "base64 in a multipart text field, not a file: curl -F image=<base64>"),
]

LANGID_CASES = [
    Case("empty-body", "langid", lambda: b"", TEXT, 400, "empty_input", "empty body"),
    Case("empty-json-body", "langid", lambda: b"", JSON_T, 400, "empty_input", "empty body sent as JSON"),
    Case("empty-text", "langid", lambda: text_json(""), JSON_T, 400, "empty_text", '{"text": ""}'),
    Case("whitespace-text", "langid", lambda: text_json(" \n\t  "), JSON_T, 400, "empty_text", "only whitespace"),
    Case("control-chars-only", "langid", lambda: text_json("\x00\x01\x07\x1b"), JSON_T, 400, "empty_text",
         "only control characters"),
    Case("text-over-limit", "langid", lambda: text_json("a" * 257), JSON_T, 413, "text_too_long",
         "257 characters (limit 256)"),
    Case("plain-text-over-limit", "langid", lambda: ("hallo " * 60).encode(), TEXT, 413, "text_too_long",
         "360 characters of text/plain"),
    Case("body-over-max-bytes", "langid", lambda: b"a" * 70_000, TEXT, 413, "payload_too_large",
         "70 KB body (handler limit 64 KiB)"),
    Case("text-number", "langid", lambda: text_json(42), JSON_T, 400, "invalid_request", "'text' is a number"),
    Case("text-null", "langid", lambda: text_json(None), JSON_T, 400, "invalid_request", "'text' is null"),
    Case("text-list", "langid", lambda: text_json(["hello"]), JSON_T, 400, "invalid_request", "'text' is a list"),
    Case("json-array", "langid", lambda: b'["hello"]', JSON_T, 400, "invalid_request", "JSON array, not object"),
    Case("json-string", "langid", lambda: b'"hello"', JSON_T, 400, "invalid_request", "a bare JSON string"),
    Case("json-wrong-field", "langid", lambda: b'{"txt": "hello"}', JSON_T, 400, "invalid_request",
         "JSON object without 'text'"),
    Case("json-invalid", "langid", lambda: b'{"text": "hello"', JSON_T, 400, "invalid_json", "JSON cut short"),
    Case("json-deeply-nested", "langid", lambda: nested_json(30_000), JSON_T, 400, "invalid_json",
         "30000 nested JSON arrays (60 KB, under the 64 KiB body limit)"),
    Case("json-not-utf8", "langid", lambda: b'{"text": "caf\xe9"}', JSON_T, 400, "invalid_encoding",
         "Latin-1 bytes inside JSON"),
    Case("plain-not-utf8", "langid", lambda: b"\xff\xfe\xfa bonjour", TEXT, 400, "invalid_encoding",
         "text/plain that is not UTF-8"),
    Case("control-chars-mixed", "langid", lambda: text_json("guten\x00 \x07morgen\u200b"), JSON_T, 200, None,
         "control and zero-width characters inside words"),
    Case("emoji-only", "langid", lambda: text_json("\U0001f600\U0001f680\U0001f44d"), JSON_T, 422,
         "unclassifiable_text", "only emoji"),
    Case("digits-only", "langid", lambda: text_json("1234567890"), JSON_T, 422, "unclassifiable_text",
         "only digits"),
    Case("emoji-mixed", "langid", lambda: text_json("merci beaucoup \U0001f600"), JSON_T, 200, None,
         "words with an emoji"),
    Case("lone-surrogate", "langid", lambda: b'{"text": "hola \\ud800 amigo"}', JSON_T, 200, None,
         "JSON escape of a lone UTF-16 surrogate"),
    Case("decomposed-unicode", "langid", lambda: text_json("u\u0308ber stra\u00dfe"), JSON_T, 200, None,
         "combining characters (NFC-normalised)"),
    Case("image-content-type", "langid", digit, PNG, 415, "unsupported_media_type", "a PNG sent to the text model"),
    Case("binary-octet-stream", "langid", lambda: b"\x00\x01\x02 binary", "application/octet-stream", 415,
         "unsupported_media_type", "binary octet-stream with NUL bytes"),
    Case("xml-content-type", "langid", lambda: b"<text>hello</text>", "application/xml", 415,
         "unsupported_media_type", "application/xml"),
    Case("form-urlencoded-text", "langid", lambda: b"bonjour tout le monde", FORM, 200, None,
         "plain text labelled as a form: curl -d 'bonjour tout le monde'"),
    Case("form-urlencoded-equation", "langid", lambda: b"E=mc2", FORM, 200, None,
         "text with '=' and no field named text: curl -d 'E=mc2' (read as text)"),
    Case("form-urlencoded-json", "langid", lambda: text_json("bonjour tout le monde"), FORM, 200, None,
         "JSON labelled as a form: curl -d '{\"text\": ...}' without -H"),
    Case("form-urlencoded-not-utf8", "langid", lambda: b"caf\xe9 au lait", FORM, 400, "invalid_encoding",
         "Latin-1 text labelled as a form (the hint names -H)"),
    Case("form-urlencoded-field", "langid", lambda: b"text=bonjour+tout+le+monde", FORM, 200, None,
         "a form field named text: curl --data-urlencode 'text=bonjour tout le monde'"),
    Case("multipart-text-field", "langid", lambda: multipart("text", b"bonjour tout le monde"), MULTIPART, 200,
         None, "a multipart text field: curl -F text='bonjour tout le monde'"),
]

CASES = DIGITS_CASES + LANGID_CASES

# Valid requests mixed into every burst: they must keep getting 200 next to hostile neighbours.
VALID = {
    "digits": Case("valid", "digits", digit, PNG, 200, None, "a valid PNG digit"),
    "langid": Case("valid", "langid", lambda: text_json("guten morgen"), JSON_T, 200, None, "valid text"),
}


def markdown_table(model: str) -> str:
    """The docs/hostile-inputs.md table for one model (a unit test keeps the doc in sync)."""
    rows = ["| case | request | status | error type |", "|---|---|---|---|"]
    for case in CASES:
        if case.model == model:
            status = f"{case.status} (today 500, see below)" if case.known_issue else str(case.status)
            rows.append(f"| `{case.id}` | {case.description} ({case.content_type.split(';')[0]}) | {status} "
                        f"| {'`' + case.error_type + '`' if case.error_type else '-'} |")
    return "\n".join(rows)
