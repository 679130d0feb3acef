"""How the launchers start the OIP gateway (stackctl.serve.oip_gateway): its command and
environment, natively (stackctl.serve.native) and in the image (stackctl.serve.container).
Standard library only: the entry point imports this before anything else runs.

In the image the gateway runs when the front door does and OIP_GRPC_ADDRESS is set (the image
sets 0.0.0.0:7070); its REST routes listen on 127.0.0.1:STACK_OIP_REST_PORT (default 8078), behind
the front door.
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

GRPC_ADDRESS = "OIP_GRPC_ADDRESS"
REST_PORT = "STACK_OIP_REST_PORT"
DEFAULT_REST_PORT = "8078"


def command() -> list[str]:
    return [sys.executable, "-m", "stackctl.serve.oip_gateway"]


def gateway_env(base: Mapping[str, str], grpc_address: str, rest_address: str, upstream_url: str,
                management_url: str, model_store: Path) -> dict[str, str]:
    return {**base, GRPC_ADDRESS: grpc_address, "OIP_REST_ADDRESS": rest_address, "OIP_UPSTREAM": upstream_url,
            "TS_MANAGEMENT_URL": management_url, "MODEL_STORE": str(model_store), "PYTHONUNBUFFERED": "1"}


def rest_address(env: Mapping[str, str]) -> str:
    return f"127.0.0.1:{env.get(REST_PORT) or DEFAULT_REST_PORT}"


def container_env(env: Mapping[str, str], public: str, model_store: Path) -> dict[str, str] | None:
    """The gateway's environment in the image, given the front door's public host:port; None when
    OIP_GRPC_ADDRESS is not set (the gateway is off)."""
    if not env.get(GRPC_ADDRESS):
        return None
    door_port = public.rpartition(":")[2]
    management_port = urlparse(env.get("TS_MANAGEMENT_ADDRESS") or "http://127.0.0.1:8081").port or 8081
    return gateway_env(env, env[GRPC_ADDRESS], rest_address(env), f"http://127.0.0.1:{door_port}",
                       f"http://127.0.0.1:{management_port}", model_store)
