"""Live and ready, as the OIP gateway answers them, asked of TorchServe on each call (a probe
every few seconds costs a handful of loopback requests; a cached answer could say ready for a
model that just lost its workers).

* live: the gateway answers, and TorchServe answers /ping through the front door (any answer
  but the door's 502/504: with token auth on, /ping without the key is TorchServe's 400).
* model ready: the model (its default version, or the version named) has a READY worker per the
  management API — what stackctl.serve.readiness means by ready, per model.
* server ready: every registered model, every version, has a READY worker.
"""
from __future__ import annotations

from typing import Any

import aiohttp

from stackctl.serve.token_auth import management_token

TIMEOUT = aiohttp.ClientTimeout(total=3.0)


def management_headers() -> dict[str, str]:
    """The management key as a bearer header when token auth is on: TS_MANAGEMENT_KEY, else the
    key file that TS_KEY_FILE names (the image sets it); {} when neither gives one. Read on every
    call, never kept: TorchServe's keys expire (token_expiration_min) and a renewal rewrites the
    file, while the gateway runs for the container's life."""
    key = management_token()
    return {"Authorization": f"Bearer {key}"} if key else {}


class StatusClient:
    def __init__(self, session: aiohttp.ClientSession, management_url: str, upstream_url: str) -> None:
        self.session = session
        self.management = management_url.rstrip("/")
        self.upstream = upstream_url.rstrip("/")

    async def _get_json(self, path: str) -> Any | None:
        """The management API's JSON answer, or None for any failure (not found, not answering)."""
        try:
            async with self.session.get(f"{self.management}{path}", headers=management_headers(),
                                        timeout=TIMEOUT) as response:
                if response.status != 200:
                    return None
                return await response.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return None

    async def live(self) -> bool:
        try:
            async with self.session.get(f"{self.upstream}/ping", timeout=TIMEOUT) as response:
                return response.status not in (502, 504)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False

    async def model_ready(self, name: str, version: str | None = None) -> bool:
        described = await self._get_json(f"/models/{name}" + (f"/{version}" if version else ""))
        return isinstance(described, list) and any(_has_ready_worker(v) for v in described)

    async def server_ready(self) -> bool:
        listing = await self._get_json("/models?limit=1000")
        models = listing.get("models") if isinstance(listing, dict) else None
        if not models:
            return False
        for entry in models:
            described = await self._get_json(f"/models/{entry['modelName']}/all")
            if not isinstance(described, list) or not described \
                    or not all(_has_ready_worker(v) for v in described):
                return False
        return True


def _has_ready_worker(version: Any) -> bool:
    return isinstance(version, dict) and any(w.get("status") == "READY" for w in version.get("workers", []))
