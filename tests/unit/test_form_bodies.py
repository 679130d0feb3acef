"""Form bodies, through the front door (as served) and from TorchServe alone (the benchmark's
server). stackctl.catalog.inprocess.worker_item emulates both: the front door's relabelling of
form-urlencoded bodies and TorchServe's Netty form decoder (checked against the jar 0.12 ships).

Through the front door a form-urlencoded body arrives as sent: `curl --data-binary @digit.png`
is read as the image, `curl -d 'bonjour tout le monde'` as the text, `--data-urlencode text=...`
as its field; what still fails says which -H to send. From TorchServe alone,
`curl -d 'bonjour tout le monde'` reaches langid as NO field at all (the decoder drops text
without "="), so it is refused with 415 naming what to send, never a false "empty body"; digits
answers every form with 415 and the Content-Type to send.
"""
from __future__ import annotations

import json

import pytest

from handlers import payload
from handlers.errors import InputError
from handlers.inputs import Request as Received
from handlers.inputs import unpack, with_form_hint
from stackctl import paths
from stackctl.catalog.inprocess import InProcessModel, Request, urlencoded_fields

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


def _item(item: dict, content_type: str | None, sent_as: str | None = None) -> Received:
    """A TorchServe item as the adapter hands it to the input stage (handlers.base.core_request)."""
    body = next((item[key] for key in ("body", "data") if item.get(key) is not None), None)
    return Received(body, content_type, fields=item, sent_as=sent_as)


def test_a_named_form_field_is_read_as_text() -> None:
    assert unpack(_item({"text": b"hallo"}, FORM), "text") == (b"hallo", payload.FORM_FIELD_TYPE)
    assert unpack(_item({"lang": b"x", "text": b"hallo"}, MULTIPART), "text") == (b"hallo", payload.FORM_FIELD_TYPE)
    assert unpack(_item({"body": b"raw"}, "text/plain"), "text") == (b"raw", "text/plain")


@pytest.mark.parametrize("fields", [{}, {"rock": b""}, {"E": b"mc2"}])
def test_an_urlencoded_form_without_the_models_field_is_refused_with_the_fix(fields: dict) -> None:
    with pytest.raises(InputError) as refused:
        unpack(_item(fields, FORM), "text")
    assert refused.value.code == 415 and "--data-urlencode 'text=...'" in refused.value.message


@pytest.mark.parametrize("front_door", [True, False])
def test_langid_answers_form_text_fields_like_the_same_text_in_json(langid: InProcessModel, front_door: bool) -> None:
    text = "bonjour tout le monde"
    (status, expected), = langid.predict([Request(json.dumps({"text": text}).encode(), "application/json")])
    assert status == 200
    results = langid.predict([Request(_multipart("text", text.encode()), MULTIPART),         # curl -F text=
                              Request(b"text=bonjour+tout+le+monde", FORM),                    # --data-urlencode
                              Request(_multipart("text", text.encode(), "t.txt", "text/plain"), MULTIPART)],
                             front_door)
    for status, answer in results:
        assert status == 200 and answer["top_k"] == expected["top_k"], answer


def test_without_the_front_door_langid_refuses_text_the_frontend_dropped_and_says_what_to_send(
        langid: InProcessModel) -> None:
    (status, answer), = langid.predict([Request(b"bonjour tout le monde", FORM)], front_door=False)  # curl -d
    assert status == 415 and answer["error"]["type"] == "unsupported_media_type", answer
    assert "-H 'Content-Type: text/plain'" in answer["error"]["message"]


def test_without_the_front_door_digits_answers_forms_with_415_and_the_content_type_to_send(
        digits: InProcessModel) -> None:
    (status, answer), = digits.predict([Request(b'{"image": "iVBORw0KGgo="}', FORM)], front_door=False)
    assert status == 415 and "-H 'Content-Type: image/png'" in answer["error"]["message"], answer
    (status, answer), = digits.predict([Request(_multipart("image", b"iVBORw0KGgo="), MULTIPART)])
    assert status == 415 and "-F image=@FILE" in answer["error"]["message"], answer


# --- through the front door: the body as the client sent it ------------------------------------------
SENT_AS_FORM = "application/x-www-form-urlencoded; charset=utf-8"


@pytest.mark.parametrize("body,expected", [
    (b"bonjour tout le monde", (b"bonjour tout le monde", payload.FORM_FIELD_TYPE)),   # curl -d 'free text'
    (b"E=mc2", (b"E=mc2", payload.FORM_FIELD_TYPE)),                                   # a form, but not ours
    (b"rock & roll", (b"rock & roll", payload.FORM_FIELD_TYPE)),
    (b"context=x", (b"context=x", payload.FORM_FIELD_TYPE)),                           # "text=" inside a name
    (b"lang=fr&text=bonjour+tout%20le+monde", ("bonjour tout le monde", payload.FORM_FIELD_TYPE)),
    (b"text=caf%C3%A9", ("caf\u00e9", payload.FORM_FIELD_TYPE)),
    (b' {"text": "hallo"}', (b' {"text": "hallo"}', "application/json")),              # curl -d '{...}'
])
def test_a_text_model_reads_its_field_json_or_the_whole_body(body: bytes, expected: tuple) -> None:
    assert unpack(_item({"body": body}, "application/octet-stream", SENT_AS_FORM), "text") == expected


def test_an_image_model_reads_the_bytes_as_sent() -> None:
    png = b"\x89PNG\r\n\x1a\n%zz"
    assert unpack(_item({"body": png}, "application/octet-stream", SENT_AS_FORM), None) == (
        png, "application/octet-stream")


def test_a_form_field_that_is_not_utf8_once_decoded_is_a_400() -> None:
    with pytest.raises(InputError) as refused:
        unpack(_item({"body": b"text=caf%E9"}, "application/octet-stream", SENT_AS_FORM), "text")
    assert (refused.value.code, refused.value.type) == (400, "invalid_encoding")


def test_other_content_types_pass_untouched() -> None:
    assert unpack(_item({"body": b"raw"}, "text/plain", None), "text") == (b"raw", "text/plain")
    assert with_form_hint(InputError(400, "invalid_image", "no"), Received(sent_as="image/png")).message == "no"


def test_through_the_front_door_digits_reads_a_png_sent_without_h(digits: InProcessModel) -> None:
    png = (paths.ROOT / "tests" / "data" / "digit-7.png").read_bytes()
    (_, expected), (status, answer) = digits.predict([Request(png, "image/png"), Request(png, FORM)])
    assert status == 200 and answer["top_k"] == expected["top_k"], answer


def test_through_the_front_door_what_still_fails_names_the_content_type_to_send(
        digits: InProcessModel, langid: InProcessModel) -> None:
    (status, answer), = digits.predict([Request(b"this is not an image", FORM)])
    assert (status, answer["error"]["type"]) == (400, "invalid_image"), answer
    assert "-H 'Content-Type: image/png'" in answer["error"]["message"], answer
    (status, answer), = langid.predict([Request(b"\xff\xfe bonjour", FORM)])
    assert (status, answer["error"]["type"]) == (400, "invalid_encoding"), answer
    assert "-H 'Content-Type: text/plain'" in answer["error"]["message"], answer


def test_through_the_front_door_langid_reads_free_text_like_the_same_text_in_json(langid: InProcessModel) -> None:
    for text in ("bonjour tout le monde", "E=mc2", "rock & roll"):
        (_, expected), (status, answer) = langid.predict([Request(json.dumps({"text": text}).encode(), "application/json"),
                                                          Request(text.encode(), FORM)])
        assert status == 200 and answer["top_k"] == expected["top_k"], (text, answer)
