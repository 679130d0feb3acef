"""The v2 handler side on a real TorchServe, without the front door: the client sets
`X-Inference-Protocol: v2` itself (what the door does on its /v2 infer locations), so this checks
what only a real server shows: TorchServe hands the worker the request headers
(`Inference-Header-Content-Length`), sends back the ones the handler sets, and batches v2 and
/predictions requests together, each answered on its own.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import tritonclient.http as httpclient

from handlers.oip_contract import HEADER_LENGTH_HEADER, PROTOCOL_HEADER, PROTOCOL_VALUE
from stackctl.serve.native import NativeStack, Ports
from tests.native_server import serve_until_ready
from tests.oip_calls import check_mixed_batch, check_rest_infer, host_port, instances, rest_input

V2 = {PROTOCOL_HEADER: PROTOCOL_VALUE}
INPUT = {"digits": "image", "langid": "text"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    stack = NativeStack(run_dir=Path(tmp_path_factory.mktemp("oip-worker")), ports=Ports.free(), front_door=False)
    try:
        yield serve_until_ready(stack)
    finally:
        stack.stop_all()


@pytest.mark.parametrize("model", ["digits", "langid"])
@pytest.mark.parametrize("count", [1, 8])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_through_torchserve_gets_the_predictions_answers(server, model: str, count: int,
                                                                      binary: bool) -> None:
    client = httpclient.InferenceServerClient(host_port(server.inference_url))
    check_rest_infer(client, server.inference_url, model, INPUT[model], count, binary, headers=V2)


def test_the_response_headers_reach_the_client(server) -> None:
    tensor = rest_input("text", instances("text", 2), True)
    body, length = httpclient._utils._get_inference_request([tensor], "", None, 0, False, False, 0, None, None)
    response = requests.post(f"{server.inference_url}/predictions/langid", data=body,
                             headers={**V2, HEADER_LENGTH_HEADER: str(length)})
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/octet-stream"
    header_length = int(response.headers[HEADER_LENGTH_HEADER])
    assert json.loads(response.content[:header_length])["outputs"][0]["parameters"]["binary_data_size"] > 0


def test_32_concurrent_v2_and_predictions_requests_with_one_bad_instance(server) -> None:
    """Only the request with the bad instance gets 400 (naming it); the 31 others, batched with it
    by TorchServe, equal their single answers (tests/oip_calls.py; test_oip.py sends the same
    through the front door)."""
    check_mixed_batch(server.inference_url, V2)
