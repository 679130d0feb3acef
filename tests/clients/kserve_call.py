"""Call a v2 server with the KServe SDK's REST client (kserve.InferenceRESTClient) and print what it
answered as one JSON object: live, ready, model_ready, and the infer outputs `label` and
`probability` as lists. Runs in the SDK's own venv (`make kserve-client`: .venv-kserve), which the
stack's .venv cannot hold (the SDK pins psutil<6 and protobuf<7); tests/integration/test_oip.py
runs it.

    .venv-kserve/bin/python tests/clients/kserve_call.py http://127.0.0.1:8080 langid text [--binary] FILE...

Each FILE is one instance: an image file's bytes (input `image`) or a UTF-8 text (input `text`).
JSON requests carry images as base64 strings, as the stack's OIP contract says (docs/protocol.md).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from pathlib import Path

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput


def _elements(kind: str, values: list[bytes], binary: bool) -> list[object]:
    if binary:
        return list(values)
    return [base64.b64encode(v).decode() if kind == "image" else v.decode() for v in values]


def _plain(array: np.ndarray) -> list:
    return [[x.decode() if isinstance(x, bytes) else x for x in row] for row in array.tolist()]


async def call(url: str, model: str, kind: str, values: list[bytes], binary: bool, column: bool = False) -> dict:
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=60))
    try:
        # column: a Triton server (docs/triton.md), whose health routes answer 200 with an empty
        # body, which the SDK's is_*_live/ready read as JSON and fail on; the test polls them itself.
        answer: dict = {} if column else {"live": await client.is_server_live(url),
                                          "ready": await client.is_server_ready(url),
                                          "model_ready": await client.is_model_ready(url, model)}
        shape = [len(values), 1] if column else [len(values)]
        tensor = InferInput(kind, shape, "BYTES")
        tensor.set_data_from_numpy(np.array(_elements(kind, values, binary), dtype=np.object_).reshape(shape),
                                   binary_data=binary)
        outputs = [RequestedOutput(name, parameters={"binary_data": binary}) for name in ("label", "probability")]
        request = InferRequest(model_name=model, infer_inputs=[tensor], request_id="kserve-1", request_outputs=outputs)
        response = await client.infer(url, request, model_name=model)
        answer["id"] = response.id
        for output in response.outputs:
            answer[output.name] = _plain(output.as_numpy())
        return answer
    finally:
        await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("model")
    parser.add_argument("kind", choices=("image", "text"))
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--binary", action="store_true", help="the binary tensor data extension, in and out")
    parser.add_argument("--column", action="store_true", help="Triton: shape [N, 1] (its batched shape) instead of [N], and no health calls")
    args = parser.parse_args()
    values = [f.read_bytes() for f in args.files]
    print(json.dumps(asyncio.run(call(args.url, args.model, args.kind, values, args.binary, args.column))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
