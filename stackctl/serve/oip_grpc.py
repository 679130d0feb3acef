"""The OIP gateway's gRPC service: KServe's `inference.GRPCInferenceService`, the package
tritonclient.grpc calls (its stubs: tritonclient.grpc.service_pb2 / service_pb2_grpc).

Health, ready and metadata answer what the REST routes answer (the same catalog and status
client). ModelInfer posts the request to the front door in the REST binary extension
(stackctl.serve.oip_binary) and turns its answer back, so batching, wait bounds, metrics and
error texts are those of REST. The front door's status becomes a gRPC code; its {"error": ...}
text the details. Methods this stack does not offer (repository, shared memory, statistics,
trace) stay the generated servicer's UNIMPLEMENTED.
"""
from __future__ import annotations

import json
from typing import Any

import aiohttp
import grpc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from stackctl.serve import oip_binary, oip_models
from stackctl.serve.oip_binary import BadRequest
from stackctl.serve.oip_models import Catalog, UnknownModel
from stackctl.serve.oip_status import StatusClient

# The front door's answers as gRPC codes; another 4xx is the client's mistake, another 5xx ours.
CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
         413: grpc.StatusCode.INVALID_ARGUMENT, 429: grpc.StatusCode.RESOURCE_EXHAUSTED,
         502: grpc.StatusCode.UNAVAILABLE, 503: grpc.StatusCode.UNAVAILABLE,
         504: grpc.StatusCode.DEADLINE_EXCEEDED}


def grpc_code(status: int) -> grpc.StatusCode:
    return CODES.get(status, grpc.StatusCode.INVALID_ARGUMENT if 400 <= status < 500 else grpc.StatusCode.INTERNAL)


def error_text(status: int, body: bytes) -> str:
    """The OIP error text of a REST answer, or the body itself when it is not in that shape."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return str(parsed["error"])
    return f"HTTP {status}: {body[:500].decode(errors='replace').strip()}"


def _forwarded(context: Any) -> dict[str, str]:
    """The call's `authorization` metadata as the REST header: with token auth on, TorchServe
    checks the inference key on the request the gateway makes for the client."""
    values = [str(value) for key, value in (context.invocation_metadata() or ()) if key == "authorization"]
    return {"Authorization": values[0]} if values else {}


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, catalog: Catalog, status: StatusClient, session: aiohttp.ClientSession,
                 upstream_url: str) -> None:
        self.catalog = catalog
        self.status = status
        self.session = session
        self.upstream = upstream_url.rstrip("/")

    async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto's names)
        return pb.ServerLiveResponse(live=await self.status.live())

    async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.ServerReadyResponse(ready=await self.status.server_ready())

    async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self._known(request.name, request.version, context)
        return pb.ModelReadyResponse(ready=await self.status.model_ready(request.name, request.version or None))

    async def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.ServerMetadataResponse(**oip_models.server_metadata())

    async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self._known(request.name, request.version, context)
        meta = oip_models.model_metadata(self.catalog, request.name, request.version or None)
        tensors = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(name=meta["name"], versions=meta["versions"], platform=meta["platform"],
                                        inputs=[tensors(**t) for t in meta["inputs"]],
                                        outputs=[tensors(**t) for t in meta["outputs"]])

    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self._known(request.model_name, request.model_version, context)
        try:
            path, body, headers = oip_binary.rest_request(request)
        except BadRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        headers.update(_forwarded(context))
        remaining = context.time_remaining()   # the client's deadline, if it set one
        timeout = aiohttp.ClientTimeout(total=remaining) if remaining is not None else None
        try:
            async with self.session.post(f"{self.upstream}{path}", data=body, headers=headers,
                                         timeout=timeout) as response:
                answer = await response.read()
                if response.status != 200:
                    await context.abort(grpc_code(response.status), error_text(response.status, answer))
                return oip_binary.infer_response(answer, response.headers.get(oip_binary.HEADER_LENGTH), request)
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline_exceeded: no answer within the call's deadline")
        except aiohttp.ClientError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"bad_gateway: the front door is not answering: {exc}")

    async def _known(self, name: str, version: str, context: Any) -> None:
        """NOT_FOUND, as REST's 404, for a model or version this server does not serve."""
        try:
            self.catalog.get(name, version or None)
        except UnknownModel as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
