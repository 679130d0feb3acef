"""Request compression for v2 infer requests (handlers/oip_encoding.py): gzip and deflate bodies
decoded as sent, never past the body limit. The hostile bodies are in tests/oip_hostile.py."""
from __future__ import annotations

import gzip
import zlib

import pytest

from handlers.oip_encoding import DEFAULT_MAX_SIZE, MAX_SIZE_ENV, EncodingError, decode_body, max_size
from stackctl import paths

BODY = b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["bonjour"]}]}'


@pytest.mark.parametrize("encoding,compress", [("gzip", gzip.compress), ("x-gzip", gzip.compress),
                                               (" GZIP ", gzip.compress), ("deflate", zlib.compress)])
def test_a_compressed_body_decodes_to_what_was_sent(encoding: str, compress) -> None:
    assert decode_body(compress(BODY), encoding) == BODY


def test_identity_and_no_encoding_leave_the_body_as_it_is() -> None:
    assert decode_body(BODY, None) is BODY and decode_body(BODY, "identity") is BODY
    assert decode_body({"inputs": []}, None) == {"inputs": []}


def test_gzip_members_one_after_the_other_are_one_body() -> None:
    assert decode_body(gzip.compress(BODY[:10]) + gzip.compress(BODY[10:]), "gzip") == BODY


@pytest.mark.parametrize("size", [1000, 1001, 50_000])
def test_the_decoded_size_is_bounded_whatever_the_ratio(size: int) -> None:
    """Exactly the limit passes; one byte more is 413, and decoding stops there (a bomb's
    gigabytes are never produced)."""
    body = gzip.compress(b"\0" * size)
    if size <= 1000:
        assert len(decode_body(body, "gzip", limit=1000)) == size
        return
    with pytest.raises(EncodingError) as refused:
        decode_body(body, "gzip", limit=1000)
    assert refused.value.code == 413 and "more than 1000 bytes" in refused.value.message


def test_a_bomb_costs_no_more_than_the_limit() -> None:
    import tracemalloc

    bomb = gzip.compress(b"\0" * (256 << 20))  # 256 MiB in ~250 kB
    tracemalloc.start()
    with pytest.raises(EncodingError):
        decode_body(bomb, "gzip", limit=1 << 20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_the_limit_is_the_server_max_request_size(monkeypatch: pytest.MonkeyPatch) -> None:
    properties = (paths.ROOT / "config" / "config.properties").read_text()
    assert f"max_request_size={DEFAULT_MAX_SIZE}" in properties.splitlines()
    monkeypatch.delenv(MAX_SIZE_ENV, raising=False)
    assert max_size() == DEFAULT_MAX_SIZE
    monkeypatch.setenv(MAX_SIZE_ENV, "1024")
    assert max_size() == 1024
