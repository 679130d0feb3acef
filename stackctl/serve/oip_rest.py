"""The OIP gateway's REST routes: health, server and model metadata, model ready. The front door
proxies GET /v2... here (config/front-door.conf.template); inference itself goes from the front
door to TorchServe, never through here. Unknown paths, models and versions get 404 in the OIP
error shape {"error": "..."}.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from stackctl.serve import oip_models
from stackctl.serve.oip_models import Catalog, UnknownModel
from stackctl.serve.oip_status import StatusClient

CATALOG = web.AppKey("catalog", Catalog)
STATUS = web.AppKey("status", StatusClient)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _state(key: str, value: bool, **more: str) -> web.Response:
    """A health or ready answer: the status says it (200, else 503), as the protocol's text and
    tritonclient read it, and the body too ({"live": true}, ...), as the KServe SDK reads it."""
    return web.json_response({**more, key: value}, status=200 if value else 503)


async def live(request: web.Request) -> web.Response:
    return _state("live", await request.app[STATUS].live())


async def ready(request: web.Request) -> web.Response:
    return _state("ready", await request.app[STATUS].server_ready())


async def server_metadata(request: web.Request) -> web.Response:
    return web.json_response(oip_models.server_metadata())


def _model(request: web.Request) -> tuple[str, str | None]:
    return request.match_info["model"], request.match_info.get("version")


async def model_metadata(request: web.Request) -> web.Response:
    name, version = _model(request)
    try:
        return web.json_response(oip_models.model_metadata(request.app[CATALOG], name, version))
    except UnknownModel as exc:
        return _error(404, str(exc))


async def model_ready(request: web.Request) -> web.Response:
    name, version = _model(request)
    try:
        request.app[CATALOG].get(name, version)
    except UnknownModel as exc:
        return _error(404, str(exc))
    return _state("ready", await request.app[STATUS].model_ready(name, version), name=name)


async def not_found(request: web.Request) -> web.Response:
    return _error(404, f"not_found: no OIP route {request.method} {request.path}")


def app(catalog: Catalog, status: StatusClient) -> web.Application:
    application = web.Application()
    application[CATALOG] = catalog
    application[STATUS] = status
    routes: list[Any] = [
        web.get("/v2/health/live", live), web.get("/v2/health/ready", ready),
        web.get("/v2", server_metadata), web.get("/v2/", server_metadata),
        web.get("/v2/models/{model}", model_metadata),
        web.get("/v2/models/{model}/versions/{version}", model_metadata),
        web.get("/v2/models/{model}/ready", model_ready),
        web.get("/v2/models/{model}/versions/{version}/ready", model_ready),
        web.route("*", "/{tail:.*}", not_found),
    ]
    application.add_routes(routes)
    return application
