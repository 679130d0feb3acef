"""Property-based: whatever bytes, JSON or text arrive, the decoders and the whole handler answer
with a 4xx InputError or a valid answer, never an unhandled exception or a 5xx."""
from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers import errors, payload
from handlers.errors import InputError
from handlers.image import decode_image_request
from handlers.inputs import Request as Received
from handlers.inputs import unpack
from handlers.text import decode_text_request
from stackctl.catalog.inprocess import InProcessModel, Request
from stackctl.catalog.specs import get_spec
from tests.hostile import CASES, digit

IMAGE = get_spec("digits").handler.image
TEXT = get_spec("langid").handler.text
VOCAB = {ch: i + 2 for i, ch in enumerate("abcdefghijklmnopqrstuvwxyzäöüßéèêàâçñ' -")}
PNG = digit(28)  # made once, outside any strategy (it draws from numpy's RNG)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CONTENT_TYPES = st.sampled_from([None, "", "image/png", "image/jpeg", "application/json", "text/plain",
                                 "text/plain; charset=utf-8", "application/octet-stream", "application/xml",
                                 "multipart/form-data", "image/svg+xml", "APPLICATION/JSON; charset=latin-1",
                                 "application/x-www-form-urlencoded"])
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
# JSON objects that look almost right: the expected key with any value, plus noise keys.
ENVELOPES = st.builds(lambda key, value, extra: {key: value, **extra},
                      st.sampled_from(["image", "text", "Image", "data"]), JSON_VALUES,
                      st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=2))


def _bodies(draw_json: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.binary(max_size=2048),
        st.text(max_size=300).map(str.encode),
        draw_json.map(lambda v: json.dumps(v).encode()),
        ENVELOPES.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=64).map(lambda b: json.dumps({"image": base64.b64encode(b).decode()}).encode()),
        # A real image with a few bytes flipped: headers and data that are almost right.
        st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8).map(_mutated_png),
    )


def _mutated_png(flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(PNG)
    for position, value in flips:
        data[position % len(data)] = value
    return bytes(data)


def _is_4xx(err: InputError) -> bool:
    return 400 <= err.code < 500 and err.type in errors.ERROR_TYPES and bool(err.message)


@FAST
@given(body=_bodies(JSON_VALUES), content_type=CONTENT_TYPES)
def test_image_decoder_returns_a_tensor_or_a_4xx(body: bytes, content_type: str | None) -> None:
    try:
        tensor = decode_image_request(body, content_type, IMAGE)
    except InputError as err:
        assert _is_4xx(err), (err.code, err.type)
    else:
        assert tuple(tensor.shape) == (1, 8, 8)


@FAST
@given(body=_bodies(JSON_VALUES) | st.text(max_size=400).map(lambda t: json.dumps({"text": t}).encode()),
       content_type=CONTENT_TYPES)
def test_text_decoder_returns_ids_or_a_4xx(body: bytes, content_type: str | None) -> None:
    try:
        ids = decode_text_request(body, content_type, TEXT, VOCAB)
    except InputError as err:
        assert _is_4xx(err), (err.code, err.type)
    else:
        assert 1 <= len(ids) <= TEXT.max_chars


@FAST
@given(body=st.one_of(st.binary(max_size=512), st.text(max_size=200), JSON_VALUES))
def test_json_parsing_never_escapes_as_anything_but_input_error(body) -> None:
    try:
        document = payload.parse_json(body)
        payload.json_field(document, "text", str, '{"text": "..."}')
    except InputError as err:
        assert _is_4xx(err)


@FAST
@given(text=st.text(max_size=200))
def test_base64_decoding_is_strict_and_bounded(text: str) -> None:
    try:
        data = payload.decode_base64(text, max_bytes=64)
    except InputError as err:
        assert err.type in (errors.INVALID_BASE64, errors.PAYLOAD_TOO_LARGE)
    else:
        assert len(data) <= 64 + 3


FORM_BODIES = st.one_of(st.binary(max_size=512), st.text(max_size=200).map(str.encode),
                        st.lists(st.tuples(st.sampled_from(["text", "lang", "t", ""]), st.text(max_size=30)), max_size=4)
                        .map(lambda pairs: urllib.parse.urlencode(pairs).encode()),
                        st.text(alphabet="text=%&+abc\u00e9", max_size=40).map(str.encode))


@FAST
@given(body=FORM_BODIES, field=st.sampled_from(["text", None]))
def test_a_body_sent_as_a_form_is_read_or_refused_with_a_4xx(body: bytes, field: str | None) -> None:
    """Whatever arrives labelled form-urlencoded through the front door, reading it answers bytes or
    text for the decoder, or a 4xx; never anything else."""
    try:
        value, content_type = unpack(Received(body, "application/octet-stream", fields={"body": body},
                                              sent_as=payload.FORM_URLENCODED), field)
    except InputError as err:
        assert _is_4xx(err)
    else:
        assert isinstance(value, (bytes, str)) and content_type


def _decode_with(module, text: str) -> bytes | str:
    """decode_base64 with the given base64 backend: the bytes, or the error type it answered."""
    saved, payload._base64 = payload._base64, module
    try:
        return payload.decode_base64(text, max_bytes=64)
    except InputError as err:
        return err.type
    finally:
        payload._base64 = saved


BASE64_TEXT = st.one_of(
    st.text(max_size=120),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n\r\t\x0b\x1c\u00a0", max_size=120),
    st.binary(max_size=70).flatmap(lambda b: st.sampled_from([
        base64.b64encode(b).decode(), base64.urlsafe_b64encode(b).decode().rstrip("="),
        base64.encodebytes(b).decode(), "data:image/png;base64," + base64.b64encode(b).decode()])),
)


@FAST
@given(text=BASE64_TEXT)
def test_fast_base64_backend_accepts_and_rejects_exactly_what_the_standard_library_does(text: str) -> None:
    """pybase64 is optional (handlers fall back to `base64`): the answer must not depend on it."""
    pybase64 = pytest.importorskip("pybase64")
    assert _decode_with(pybase64, text) == _decode_with(base64, text)


# --- the whole handler, in process, with TorchServe's Context --------------------------------------
@pytest.fixture(scope="module")
def models() -> dict[str, InProcessModel]:
    for name in ("digits", "langid"):
        if not get_spec(name).archive_path.is_file():
            pytest.fail(f"model_store/{name}.mar missing: run `make models`", pytrace=False)
    return {name: InProcessModel(get_spec(name).archive_path) for name in ("digits", "langid")}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=st.sampled_from(["digits", "langid"]),
       batch=st.lists(st.tuples(_bodies(JSON_VALUES), CONTENT_TYPES), min_size=1, max_size=6))
def test_handler_answers_every_item_of_a_random_batch(models, model: str, batch) -> None:
    answers = models[model].predict([Request(body, ct) for body, ct in batch])
    assert len(answers) == len(batch)
    for status, answer in answers:
        if status == 200:
            assert answer["model"] == model and len(answer["top_k"]) == 3
        else:
            assert 400 <= status < 500, answer
            assert answer["error"]["code"] == status and answer["error"]["type"] in errors.ERROR_TYPES


@pytest.mark.parametrize("model", ["digits", "langid"])
def test_one_batch_of_every_hostile_case_keeps_each_answer(models, model: str) -> None:
    """All hostile cases of a model in ONE batch, with valid items between them: each item gets
    exactly what it gets alone (the live-server twin is in tests/integration)."""
    cases = [c for c in CASES if c.model == model]
    valid = next(c for c in CASES if c.model == model and c.status == 200)
    batch = [item for c in cases for item in (c, valid)]
    answers = models[model].predict([Request(c.body(), c.content_type) for c in batch])
    for case, (status, answer) in zip(batch, answers):
        assert status == case.status, (case.id, status, answer)
        if case.error_type:
            assert answer["error"]["type"] == case.error_type, (case.id, answer)
        else:
            assert answer["model"] == model


def test_docs_table_matches_the_case_table() -> None:
    from stackctl import paths
    from tests.hostile import markdown_table

    doc = (paths.ROOT / "docs" / "hostile-inputs.md").read_text()
    for model in ("digits", "langid"):
        assert markdown_table(model) in doc, f"docs/hostile-inputs.md is out of date for {model}: regenerate its table"


def test_docs_v2_table_matches_the_v2_case_table() -> None:
    from stackctl import paths
    from tests.oip_hostile import markdown_table

    doc = (paths.ROOT / "docs" / "hostile-inputs.md").read_text()
    assert markdown_table() in doc, "docs/hostile-inputs.md is out of date for v2 requests: regenerate its table"
