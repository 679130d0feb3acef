"""Helpers of the Triton runtime's tests (tests/integration/test_triton*.py): a Triton server of
its own, the TorchServe handler's answers to compare with, and the hostile table as a Triton client
sends it.

Triton batches on the first dimension, so its inputs are [N, 1] (docs/triton.md): `column` turns a
hostile request's [N] input into [N, 1], so each case reaches the model with the mistake it is
about. `TRITON_ANSWERS` holds the cases Triton's own frontend answers before the model sees them,
with what it says (measured on 2.51; the same table is in docs/triton.md).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from handlers.oip_contract import HEADER_LENGTH_HEADER
from stackctl.catalog.inprocess import InProcessModel, Request
from stackctl.serve.native import Ports
from stackctl.serve.triton import TritonFiles, TritonStack, launch, triton_venv
from tests.oip_hostile import OipCase

# "model:case id" -> (status, how Triton's error starts) where Triton's frontend, not the model,
# answers (measured on 2.51, shapes [N, 1]); 200: Triton answered (header-length-not-a-number: it
# ignores a header length that is no number). classification-extension is apart: CLASSIFICATION_CRASH.
CLASSIFICATION = "classification-extension"
TRITON_ANSWERS: dict[str, tuple[int, str]] = {
    'digits:no-inputs': (500, "Unable to parse 'inputs': attempt to access non-existing object member 'inputs'"),
    'digits:empty-inputs': (400, "[request id: <id_unknown>] expected 1 inputs but got 0 inputs for model 'digits'. Got inpu"),
    'digits:misnamed-input': (400, "unexpected inference input 'input0' for model 'digits'"),
    'digits:two-inputs': (400, "[request id: <id_unknown>] input 'image' already exists in request"),
    'digits:wrong-datatype': (500, "Unable to parse 'data': attempt to access JSON non-number as double"),
    'digits:wrong-shape': (400, "[request id: <id_unknown>] unexpected shape for input 'image' for model 'digits'. Expected"),
    'digits:shape-count-mismatch': (400, "[request id: <id_unknown>] expected 3 string elements for inference input 'image' for mode"),
    'digits:zero-instances': (400, "[request id: <id_unknown>] expected 1 string elements for inference input 'image' for mode"),
    'digits:too-many-instances': (400, "[request id: <id_unknown>] inference request batch-size must be <= 8 for 'digits'"),
    'digits:element-not-string': (500, 'Unable to parse JSON bytes array: attempt to access JSON non-string as string'),
    'digits:no-data': (400, "Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters"),
    'digits:body-not-json': (500, 'failed to parse the request JSON buffer: Invalid value. at 12'),
    'digits:header-not-json': (500, 'failed to parse the request JSON buffer: Invalid value. at 1'),
    'digits:header-length-not-a-number': (400, 'instance 0: invalid_encoding: JSON body is not valid UTF-8 (invalid byte at offset 97)'),
    'digits:header-length-past-body': (400, 'inference header size should be in range (0, 688), got: 100000000'),
    'digits:header-length-too-short': (500, 'failed to parse the request JSON buffer: Invalid value. at 10'),
    'digits:binary-size-mismatch': (400, "unexpected additional input data for model 'digits'"),
    'digits:binary-element-truncated': (400, "incomplete string data for inference input 'image', expecting string of length 10 but only"),
    'digits:binary-count-mismatch': (400, "[request id: <id_unknown>] unexpected number of string elements 2 for inference input 'ima"),
    'digits:binary-too-few': (400, "[request id: <id_unknown>] expected 3 string elements for inference input 'image' for mode"),
    'digits:unknown-output': (400, "unexpected inference output 'scores' for model 'digits'"),
    'digits:id-not-string': (500, "Unable to parse 'id': attempt to access JSON non-string as string"),
    'langid:no-inputs': (500, "Unable to parse 'inputs': attempt to access non-existing object member 'inputs'"),
    'langid:empty-inputs': (400, "[request id: <id_unknown>] expected 1 inputs but got 0 inputs for model 'langid'. Got inpu"),
    'langid:misnamed-input': (400, "unexpected inference input 'input0' for model 'langid'"),
    'langid:two-inputs': (400, "[request id: <id_unknown>] input 'text' already exists in request"),
    'langid:wrong-datatype': (500, "Unable to parse 'data': attempt to access JSON non-number as double"),
    'langid:wrong-shape': (400, "[request id: <id_unknown>] unexpected shape for input 'text' for model 'langid'. Expected "),
    'langid:shape-count-mismatch': (400, "[request id: <id_unknown>] expected 3 string elements for inference input 'text' for model"),
    'langid:zero-instances': (400, "[request id: <id_unknown>] expected 1 string elements for inference input 'text' for model"),
    'langid:too-many-instances': (400, "[request id: <id_unknown>] inference request batch-size must be <= 32 for 'langid'"),
    'langid:element-not-string': (500, 'Unable to parse JSON bytes array: attempt to access JSON non-string as string'),
    'langid:no-data': (400, "Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters"),
    'langid:body-not-json': (500, 'failed to parse the request JSON buffer: Invalid value. at 12'),
    'langid:header-not-json': (500, 'failed to parse the request JSON buffer: Invalid value. at 1'),
    'langid:header-length-not-a-number': (200, ''),
    'langid:header-length-past-body': (400, 'inference header size should be in range (0, 116), got: 100000000'),
    'langid:header-length-too-short': (500, 'failed to parse the request JSON buffer: Invalid value. at 10'),
    'langid:binary-size-mismatch': (400, "unexpected additional input data for model 'langid'"),
    'langid:binary-element-truncated': (400, "incomplete string data for inference input 'text', expecting string of length 10 but only "),
    'langid:binary-count-mismatch': (400, "[request id: <id_unknown>] unexpected number of string elements 2 for inference input 'tex"),
    'langid:binary-too-few': (400, "[request id: <id_unknown>] expected 3 string elements for inference input 'text' for model"),
    'langid:unknown-output': (400, "unexpected inference output 'scores' for model 'langid'"),
    'langid:id-not-string': (500, "Unable to parse 'id': attempt to access JSON non-string as string"),
    # Content-Encoding (gzip, deflate): Triton's frontend decodes it itself, and worse: a body that is
    # not gzip reaches the model empty, a cut-short or bombed one is a JSON error (500), deflate is
    # read as raw deflate (a zlib body decodes to garbage), another coding is 501.
    'digits:body-not-gzip': (400, 'instance 0: empty_input: request body is empty; send image bytes or JSON {"image": "<base6'),
    'digits:gzip-cut-short': (500, "failed to parse the request JSON buffer: Missing a comma or '}' after an object member. at"),
    'digits:deflate-not-zlib': (400, "[request id: <id_unknown>] unexpected shape for input 'image' for model 'digits'. Expected"),
    'digits:gzip-bomb': (500, "failed to parse the request JSON buffer: The document is empty. at 8388609"),
    'digits:unsupported-encoding': (501, "Unsupported compression type"),
    'langid:body-not-gzip': (400, 'instance 0: empty_input: request body is empty; send JSON {"text": "...'),
    'langid:gzip-cut-short': (500, "failed to parse the request JSON buffer: Missing a comma or '}' after an object member. at"),
    'langid:deflate-not-zlib': (400, "[request id: <id_unknown>] unexpected shape for input 'text' for model 'langid'. Expected "),
    'langid:gzip-bomb': (500, "failed to parse the request JSON buffer: The document is empty. at 8388609"),
    'langid:unsupported-encoding': (501, "Unsupported compression type"),
}


def triton_missing() -> str | None:
    """Why the Triton tests cannot run here, or None (make test installs it: mk/triton.mk)."""
    return TritonFiles(triton_venv()).missing()


@contextmanager
def triton_server(store: Path, work: Path, timeout: float = 240.0) -> Iterator[TritonStack]:
    """tritonserver over `store`'s archives on free loopback ports, ready; always stopped."""
    ports = Ports.free()
    stack = TritonStack(run_dir=work / "run", ports=ports, model_store=store)
    try:
        launch(stack, TritonFiles(triton_venv(), work / "build"), timeout)
        yield stack
    finally:
        stack.stop_all()


def reference_answers(archive: Path, kind: str, values: list[bytes]) -> list[dict]:
    """What the TorchServe handler answers to /predictions for each value, in process (TorchServe's
    own Context, the same archive)."""
    model = InProcessModel(archive)
    requests = [Request(v, "image/png") if kind == "image" else
                Request(json.dumps({"text": v.decode()}).encode(), "application/json") for v in values]
    answers = model.predict(requests, front_door=False)
    assert all(status == 200 for status, _ in answers), answers
    return [body for _, body in answers]


def columned(document: dict) -> dict:
    for tensor in document.get("inputs") or []:
        if isinstance(tensor, dict) and isinstance(tensor.get("shape"), list) and len(tensor["shape"]) == 1:
            tensor["shape"] = [*tensor["shape"], 1]
    return document


def column(case: OipCase) -> tuple[bytes, dict[str, str]]:
    """The case's request with its [N] input as [N, 1]; a body that is no JSON stays as it is."""
    body, headers = case.request()
    length = headers.get(HEADER_LENGTH_HEADER)
    try:
        if length is None:
            return json.dumps(columned(json.loads(body))).encode(), headers
        size = int(length)
        header = json.dumps(columned(json.loads(body[:size]))).encode()
    except (ValueError, TypeError):
        return body, headers
    return header + body[size:], {**headers, HEADER_LENGTH_HEADER: str(len(header))}
