"""Form bodies, as TorchServe's frontend hands them to a worker: {field name: value bytes}.

`curl -d 'bonjour tout le monde'` (form-urlencoded) arrives as one field whose NAME is the text;
`curl -F text=...` (multipart) as a field named "text". langid answers both like the same text
sent as JSON; digits answers a form with 415 and a hint naming the Content-Type to send.
"""
from __future__ import annotations

import json

import pytest

from handlers import payload
from stackctl.inprocess import InProcessModel, Request
from stackctl.specs import get_spec

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=------------------------abc123"


@pytest.mark.parametrize("fields,typed", [
    ({"bonjour tout le monde": b""}, b"bonjour tout le monde"),       # curl -d 'bonjour tout le monde'
    ({"rock ": b"", " roll": b""}, b"rock & roll"),                    # curl -d 'rock & roll'
    ({"E": b"mc2"}, b"E=mc2"),                                         # curl -d 'E=mc2'
    ({"caf\u00e9": b""}, "caf\u00e9".encode()),                        # curl -d 'caf%C3%A9' (decoded by the frontend)
])
def test_an_urlencoded_body_is_rebuilt_from_its_fields(fields: dict, typed: bytes) -> None:
    assert payload.request_body(fields, FORM) == typed


def test_a_named_form_field_is_read_as_is() -> None:
    assert payload.request_body({"text": b"hallo welt"}, FORM, "text") == b"hallo welt"
    assert payload.request_body({"lang": b"x", "text": b"hallo welt"}, MULTIPART, "text") == b"hallo welt"
    assert payload.request_body({"body": b"raw"}, "text/plain") == b"raw"


def _model(name: str) -> InProcessModel:
    spec = get_spec(name)
    if not spec.archive_path.is_file():
        pytest.fail(f"model_store/{name}.mar missing: run `make models`", pytrace=False)
    return InProcessModel(spec.archive_path)


@pytest.fixture(scope="module")
def langid() -> InProcessModel:
    return _model("langid")


@pytest.fixture(scope="module")
def digits() -> InProcessModel:
    return _model("digits")


def test_langid_answers_form_text_like_the_same_text_in_json(langid: InProcessModel) -> None:
    text = "bonjour tout le monde"
    (status, expected), = langid.predict([Request(json.dumps({"text": text}).encode(), "application/json")])
    assert status == 200
    results = langid.predict([Request(None, FORM, {text: b""}),             # curl -d
                              Request(None, MULTIPART, {"text": text.encode()}),  # curl -F text=
                              Request(None, FORM, {"text": text.encode()})])     # --data-urlencode text=
    for status, answer in results:
        assert status == 200 and answer["top_k"] == expected["top_k"], answer


def test_digits_answers_a_form_with_415_and_the_content_type_to_send(digits: InProcessModel) -> None:
    # A PNG whose bytes the frontend's form decoder happens to accept arrives as garbage fields.
    (status, answer), = digits.predict([Request(None, FORM, {"\ufffdPNG\r\n\x1a\n": b"\x00IHDR"})])
    assert status == 415 and answer["error"]["type"] == "unsupported_media_type", answer
    assert "-H 'Content-Type: image/png'" in answer["error"]["message"]
    (status, answer), = digits.predict([Request(None, MULTIPART, {"image": b"iVBORw0KGgo="})])
    assert status == 415 and "-F image=@FILE" in answer["error"]["message"], answer
