"""The peer: what many users write instead of TorchServe — one FastAPI + uvicorn process.

    python -m bench.peer --archive model_store/digits.mar --port 8000

Same archive, same handler code and model (decode -> collate -> forward -> top-k), same device
choice; no dynamic batching, no separate frontend: each request is decoded and run alone, inline
in the event loop (a plain `async def` endpoint, uvicorn's single worker, torch using every core).
Errors answer with the project's error body, so the load generator judges both servers alike.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from handlers.errors import InputError
from handlers.topk import answer, top_k
from stackctl.inprocess import InProcessModel


def create_app(archive: Path) -> FastAPI:
    model = InProcessModel(archive, gpu_id=0 if torch.cuda.is_available() else None)
    handler = model.handler
    app = FastAPI(title=f"peer: {model.name}", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/predictions/{name}")
    async def predict(name: str, request: Request) -> JSONResponse:
        body = await request.body()
        try:
            sample = handler.decode(body, request.headers.get("content-type"))
        except InputError as err:
            return JSONResponse(err.body(), status_code=err.code)
        with torch.inference_mode(), handler._autocast():
            logits = handler.forward(handler.collate([sample]))
        return JSONResponse(answer(handler.name, top_k(logits, handler.labels, handler.k)[0]))

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "Healthy"}

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.archive), host=args.host, port=args.port, workers=1,
                log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
