"""The FastAPI peer: what many users write instead of TorchServe — FastAPI + uvicorn.

    python -m bench.fastapi_peer --archive model_store/digits.mar --port 8000 [--workers 2]

Same archive, same model core (decode -> collate -> forward -> top-k), same device
choice; no dynamic batching, no separate frontend: each request is decoded and run alone, inline
in the event loop (a plain `async def` endpoint). `--workers` uvicorn processes, as many as
TorchServe's workers for the model, each with the archive's torch threads per worker, so the
comparison is the serving layer, not the process count. Errors answer with the project's error
body, so the load generator judges every server alike.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bench.peer_model import answer_uploads, load_core

ARCHIVE_ENV = "BENCH_PEER_ARCHIVE"  # uvicorn's worker processes build the app from an import string


def create_app(archive: Path) -> FastAPI:
    core = load_core(archive)
    app = FastAPI(title=f"peer: {core.name}", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/predictions/{name}")
    async def predict(name: str, request: Request) -> JSONResponse:
        (status, answer), = answer_uploads(core, [(await request.body(), request.headers.get("content-type"))])
        return JSONResponse(answer, status_code=status)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "Healthy"}

    return app


def app_from_env() -> FastAPI:
    return create_app(Path(os.environ[ARCHIVE_ENV]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--name", help="unused: the route takes any model name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ[ARCHIVE_ENV] = str(args.archive.resolve())
    uvicorn.run("bench.fastapi_peer:app_from_env", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
