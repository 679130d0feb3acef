"""The LitServe peer: LitServe's dynamic batching around the same model core.

    python -m bench.litserve_peer --archive X.mar --port 8000 --workers 2 --max-batch-size 8 --batch-timeout-ms 10

LitServe, like TorchServe, runs an HTTP frontend (uvicorn) and worker processes fed through queues,
and batches requests per worker up to `max_batch_size` or `batch_timeout`. Here it gets TorchServe's
own settings for the model (workers, batchSize, maxBatchDelay) and the archive's threads per worker;
each worker runs the core's decode per request (`peer_model.decode_or_reject`) and its `predict` per batch, so only the
serving layer differs. The route is TorchServe's (`/predictions/<name>`), the bodies are the raw
uploads the load generator sends to every server.
"""
# No `from __future__ import annotations`: LitServe reads decode_request's annotation at run time.
import argparse
import sys
from pathlib import Path
from typing import Annotated, Any

import litserve as ls
import torch
from fastapi import Depends, HTTPException, Request

from bench.peer_model import decode_or_reject, load_core


async def raw_upload(request: Request) -> tuple[bytes, str | None]:
    """The body and its Content-Type, as every other server reads them (LitServe's default parses JSON)."""
    return await request.body(), request.headers.get("content-type")


Upload = Annotated[tuple, Depends(raw_upload)]


class HandlerAPI(ls.LitAPI):
    def __init__(self, archive: Path, max_batch_size: int, batch_timeout: float, api_path: str):
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path=api_path)
        self.archive = archive

    def setup(self, device: str) -> None:
        self.core = load_core(self.archive)

    def decode_request(self, request: Upload) -> Any:
        sample, rejected = decode_or_reject(self.core, *request)
        if rejected is not None:
            raise HTTPException(rejected[0], detail=rejected[1])
        return sample

    def batch(self, inputs: list[Any]) -> list[Any]:
        return inputs  # the core's collate runs in predict, as in every other server

    def predict(self, samples: list[Any]) -> list[dict[str, Any]]:
        return self.core.predict(samples)

    def unbatch(self, output: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return output

    def encode_response(self, output: dict[str, Any]) -> dict[str, Any]:
        return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--name", required=True, help="the route: /predictions/<name>")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=1)
    parser.add_argument("--batch-timeout-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    api = HandlerAPI(args.archive.resolve(), args.max_batch_size, args.batch_timeout_ms / 1000,
                     f"/predictions/{args.name}")
    server = ls.LitServer(api, accelerator="cuda" if torch.cuda.is_available() else "cpu", devices=1,
                          workers_per_device=args.workers, timeout=30, disable_openapi_url=True)
    server.run(host=args.host, port=args.port, num_api_servers=1, log_level="warning", generate_client_file=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
