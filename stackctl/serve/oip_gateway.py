"""The OIP gateway: the Open Inference Protocol's (KServe v2) gRPC service and its REST health and
metadata routes, one small asyncio process per stack (docs: OIP_DESIGN; issue #25).

    python -m stackctl.serve.oip_gateway

Configured by the environment:
  OIP_GRPC_ADDRESS   gRPC listen address (default 127.0.0.1:7070; the image's 0.0.0.0:7070)
  OIP_REST_ADDRESS   internal REST listen address, loopback (default 127.0.0.1:8078); the front
                     door proxies GET /v2... here
  OIP_UPSTREAM       the front door's URL (default http://127.0.0.1:8080): gRPC ModelInfer posts there
  TS_MANAGEMENT_URL  TorchServe's management API (default http://127.0.0.1:8081): worker status
  TS_MANAGEMENT_KEY, TS_KEY_FILE  with token auth on: the management key, or the key file that
                     TorchServe writes (read on each status call: keys expire and are renewed)
  MODEL_STORE        the archives TorchServe serves: each model's task kind, top_k and versions

Inference never passes through here over REST: the front door sends it to TorchServe. SIGTERM
stops the gRPC listener and finishes the calls in flight (up to OIP_STOP_GRACE_S, default 30 s),
so the launchers stop the gateway before the front door (stackctl.serve.container).
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
from aiohttp import web
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from stackctl import paths
from stackctl.serve import oip_models, oip_rest
from stackctl.serve.oip_grpc import InferenceService
from stackctl.serve.oip_status import StatusClient

DEFAULT_GRPC_ADDRESS = "127.0.0.1:7070"
DEFAULT_REST_ADDRESS = "127.0.0.1:8078"
# Above the front door's max_request_size (8 MiB): a larger body gets the door's 413, in words,
# rather than gRPC's own RESOURCE_EXHAUSTED.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Connections kept to the front door: one per call in flight, reused.
UPSTREAM_CONNECTIONS = 256


@dataclass(frozen=True)
class Settings:
    grpc_address: str
    rest_address: str
    upstream: str
    management: str
    model_store: Path
    stop_grace_s: float

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ) if env is None else env
        return cls(grpc_address=env.get("OIP_GRPC_ADDRESS") or DEFAULT_GRPC_ADDRESS,
                   rest_address=env.get("OIP_REST_ADDRESS") or DEFAULT_REST_ADDRESS,
                   upstream=env.get("OIP_UPSTREAM") or "http://127.0.0.1:8080",
                   management=env.get("TS_MANAGEMENT_URL") or "http://127.0.0.1:8081",
                   model_store=Path(env.get("MODEL_STORE") or paths.MODEL_STORE),
                   stop_grace_s=float(env.get("OIP_STOP_GRACE_S") or 30))


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 (an address with no host means all)


async def serve(settings: Settings) -> None:
    catalog = oip_models.read_catalog(settings.model_store)
    connector = aiohttp.TCPConnector(limit=UPSTREAM_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        status = StatusClient(session, settings.management, settings.upstream)
        runner = web.AppRunner(oip_rest.app(catalog, status), access_log=None)
        await runner.setup()
        host, port = split_address(settings.rest_address)
        await web.TCPSite(runner, host, port).start()
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                          ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceService(catalog, status, session, settings.upstream), server)
        try:
            bound = server.add_insecure_port(settings.grpc_address)
        except RuntimeError:  # grpcio raises where older versions returned 0
            bound = 0
        if not bound:
            raise OSError(f"cannot listen on {settings.grpc_address} for gRPC (in use?)")
        await server.start()
        print(f"OIP gateway: gRPC on {settings.grpc_address}, REST on {settings.rest_address}, "
              f"models {', '.join(sorted(catalog.models))}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        # New calls are refused from here; those in flight get up to the grace period.
        await server.stop(settings.stop_grace_s)
        await runner.cleanup()


def main() -> int:
    try:
        asyncio.run(serve(Settings.from_env()))
    except OSError as exc:
        print(f"OIP gateway: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
