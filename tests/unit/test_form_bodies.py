"""Form bodies, as TorchServe's frontend hands them to a worker (stackctl.inprocess.worker_item
emulates its Netty form decoder; checked against the jar TorchServe 0.12 ships).

`curl -F text=...` and `--data-urlencode text=...` reach langid as a field named "text" and are
answered like the same text in JSON. `curl -d 'bonjour tout le monde'` reaches it as NO field at
all (the decoder drops text without "="), so it is refused with 415 naming what to send, never a
false "empty body". digits answers every form with 415 and the Content-Type to send.
"""
from __future__ import annotations

import json

import pytest

from handlers import payload
from handlers.errors import InputError
from stackctl.inprocess import InProcessModel, Request, urlencoded_fields

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=form-test"


def _multipart(field: str, value: bytes, filename: str | None = None, part_type: str | None = None) -> bytes:
    disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--form-test\r\nContent-Disposition: {disposition}\r\n" + (f"Content-Type: {part_type}\r\n" if part_type else "")
    return head.encode() + b"\r\n" + value + b"\r\n--form-test--\r\n"


@pytest.mark.parametrize("body,fields", [
    (b"bonjour tout le monde", []),                       # no "=": nothing reaches the worker
    (b"rock & roll", [("rock", b"")]),                    # the part after the last "&" is dropped
    (b"E=mc2", [("E", b"mc2")]),
    (b"text=bonjour+tout+le+monde", [("text", b"bonjour tout le monde")]),
    (b"text=caf%C3%A9", [("text", "caf\u00e9".encode())]),
])
def test_the_frontend_emulation_reads_urlencoded_bodies_like_netty(body: bytes, fields: list) -> None:
    assert urlencoded_fields(body) == fields


def test_a_named_form_field_is_read_as_text() -> None:
    assert payload.request_input({"text": b"hallo"}, FORM, "text") == (b"hallo", payload.FORM_FIELD_TYPE)
    assert payload.request_input({"lang": b"x", "text": b"hallo"}, MULTIPART, "text") == (b"hallo", payload.FORM_FIELD_TYPE)
    assert payload.request_input({"body": b"raw"}, "text/plain", "text") == (b"raw", "text/plain")


@pytest.mark.parametrize("fields", [{}, {"rock": b""}, {"E": b"mc2"}])
def test_an_urlencoded_form_without_the_models_field_is_refused_with_the_fix(fields: dict) -> None:
    with pytest.raises(InputError) as refused:
        payload.request_input(fields, FORM, "text")
    assert refused.value.code == 415 and "--data-urlencode 'text=...'" in refused.value.message


def test_langid_answers_form_text_fields_like_the_same_text_in_json(langid: InProcessModel) -> None:
    text = "bonjour tout le monde"
    (status, expected), = langid.predict([Request(json.dumps({"text": text}).encode(), "application/json")])
    assert status == 200
    results = langid.predict([Request(_multipart("text", text.encode()), MULTIPART),         # curl -F text=
                              Request(b"text=bonjour+tout+le+monde", FORM),                    # --data-urlencode
                              Request(_multipart("text", text.encode(), "t.txt", "text/plain"), MULTIPART)])
    for status, answer in results:
        assert status == 200 and answer["top_k"] == expected["top_k"], answer


def test_langid_refuses_text_the_frontend_dropped_and_says_what_to_send(langid: InProcessModel) -> None:
    (status, answer), = langid.predict([Request(b"bonjour tout le monde", FORM)])  # curl -d
    assert status == 415 and answer["error"]["type"] == "unsupported_media_type", answer
    assert "-H 'Content-Type: text/plain'" in answer["error"]["message"]


def test_digits_answers_forms_with_415_and_the_content_type_to_send(digits: InProcessModel) -> None:
    (status, answer), = digits.predict([Request(b'{"image": "iVBORw0KGgo="}', FORM)])  # curl -d '{...}'
    assert status == 415 and "-H 'Content-Type: image/png'" in answer["error"]["message"], answer
    (status, answer), = digits.predict([Request(_multipart("image", b"iVBORw0KGgo="), MULTIPART)])
    assert status == 415 and "-F image=@FILE" in answer["error"]["message"], answer
