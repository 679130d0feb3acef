"""The BentoML peer: BentoML's adaptive batching around the same model core (run from .venv-bentoml).

    .venv-bentoml/bin/python -m bench.bentoml_peer --archive X.mar --name digits --port 8000 --workers 2 \
        --max-batch-size 8 --batch-timeout-ms 10

BentoML's HTTP server takes each request's raw body and Content-Type (a custom input type: BentoML
would otherwise parse JSON), its cork dispatcher groups requests into batches of up to TorchServe's
batchSize, adaptively (BentoML has no fixed batch window: `max_latency_ms` is its budget before a
request is refused, set like TorchServe's responseTimeout), and the worker runs the core's decode
per item and one forward pass per batch (`peer_model.answer_uploads`). `--workers` BentoML worker
processes, each with the archive's torch threads per worker. BentoML serves a service by import path, so the settings
travel in the environment to its worker processes.
"""
import argparse
import json
import os
import sys
import typing as t
from pathlib import Path

import bentoml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

SETTINGS_ENV = "BENCH_BENTOML_PEER"  # JSON: archive, name, workers, max_batch_size


def _settings() -> dict[str, t.Any]:
    return json.loads(os.environ.get(SETTINGS_ENV, '{"archive": "", "name": "model", "workers": 1, '
                                                   '"max_batch_size": 2}'))


SETTINGS = _settings()


class Uploads(bentoml.IODescriptor):
    """[(body, Content-Type)]: one per request; BentoML's batching concatenates them."""

    uploads: list[tuple[bytes, str | None]]

    @classmethod
    async def from_http_request(cls, request: Request, serde: t.Any) -> "Uploads":
        return cls(uploads=[(await request.body(), request.headers.get("content-type"))])


class Answers(bentoml.IODescriptor):
    """One answer per request, sent as the handler's own JSON (TorchServe's body, not a list)."""

    answers: list[dict[str, t.Any]]

    @classmethod
    async def to_http_response(cls, obj: t.Any, serde: t.Any) -> Response:
        status, body = obj[0]
        return JSONResponse(body, status_code=status)


@bentoml.service(workers=SETTINGS["workers"], traffic={"timeout": 30})
class HandlerService:
    def __init__(self) -> None:
        from bench.peer_model import load_core

        self.core = load_core(Path(SETTINGS["archive"]))

    @bentoml.api(route=f"/predictions/{SETTINGS['name']}", batchable=True, max_batch_size=max(2, SETTINGS["max_batch_size"]),
                 max_latency_ms=30_000, input_spec=Uploads, output_spec=Answers)
    def predict(self, uploads: list[tuple[bytes, str | None]]) -> list[tuple[int, dict[str, t.Any]]]:
        from bench.peer_model import answer_uploads

        return answer_uploads(self.core, uploads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ[SETTINGS_ENV] = json.dumps({"archive": str(args.archive.resolve()), "name": args.name,
                                           "workers": args.workers, "max_batch_size": args.max_batch_size})
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")  # no usage reports from a benchmark (or an offline host)
    bentoml_cli = Path(sys.executable).with_name("bentoml")
    os.execv(str(bentoml_cli), [str(bentoml_cli), "serve", "bench.bentoml_peer:HandlerService", "--host", args.host,
                                "--port", str(args.port), "--working-dir", str(Path(__file__).resolve().parents[1])])


if __name__ == "__main__":
    sys.exit(main())
