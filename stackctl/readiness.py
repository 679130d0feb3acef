"""Readiness: every registered model has at least one READY worker (asked of the management API).

Used by `make serve`, the test fixtures, the container HEALTHCHECK and the Kubernetes probes
(`python -m stackctl ready`), so "ready" means the same thing everywhere.
"""
from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any


class NotReady(RuntimeError):
    pass


def _get(url: str, token: str | None, timeout: float) -> Any:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback/cluster URL)
        return json.loads(response.read().decode("utf-8"))


def model_status(management_url: str, token: str | None = None, timeout: float = 2.0) -> dict[str, list[str]]:
    """{model name: [worker status, ...]} for every registered model; a model served in several
    versions (stackctl.versions) is listed once per version, as "<name>/<version>"."""
    base = management_url.rstrip("/")
    listing: dict[str, Any] = _get(f"{base}/models?limit=1000", token, timeout)
    status: dict[str, list[str]] = {}
    for entry in listing.get("models", []):
        name = entry["modelName"]
        described: list[dict[str, Any]] = _get(f"{base}/models/{name}/all", token, timeout)
        for version in described:
            key = name if len(described) == 1 else f"{name}/{version.get('modelVersion')}"
            status[key] = [w.get("status", "?") for w in version.get("workers", [])]
    return status


def check_ready(management_url: str, expected: set[str] | None = None, token: str | None = None,
                timeout: float = 2.0) -> dict[str, list[str]]:
    """Return the status when ready; raise NotReady saying what is missing otherwise."""
    try:
        status = model_status(management_url, token, timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise NotReady(f"management API at {management_url} not answering: {exc}") from None
    missing = sorted((expected or set()) - {key.split("/")[0] for key in status})
    if missing:
        raise NotReady(f"models not registered yet: {', '.join(missing)}")
    if not status:
        raise NotReady("no models registered")
    not_ready = sorted(name for name, workers in status.items() if "READY" not in workers)
    if not_ready:
        raise NotReady("no READY worker for: " + ", ".join(f"{n} {status[n]}" for n in not_ready))
    return status


def wait_until_ready(management_url: str, expected: set[str] | None = None, timeout: float = 180.0,
                     alive: Callable[[], bool] | None = None, token: str | None = None,
                     interval: float = 0.5) -> dict[str, list[str]]:
    """Poll until ready; fail fast if `alive()` says the server process died (Triton's pattern)."""
    deadline = time.monotonic() + timeout
    last = "not polled yet"
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise NotReady(f"server process exited while waiting for readiness ({last})")
        try:
            return check_ready(management_url, expected, token)
        except NotReady as exc:
            last = str(exc)
        time.sleep(interval)
    raise NotReady(f"not ready after {timeout:.0f} s: {last}")


def wait_for_http(url: str, timeout: float = 60.0, alive: Callable[[], bool] | None = None,
                  interval: float = 0.25, accepted: Callable[[int], bool] | None = None) -> None:
    """Poll a URL until it answers 2xx (e.g. Prometheus's /-/ready), or a status `accepted` takes."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise NotReady(f"process serving {url} exited ({last})")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                if 200 <= response.status < 300:
                    return
        except urllib.error.HTTPError as exc:
            if accepted is not None and accepted(exc.code):
                return
            last = str(exc)
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(interval)
    raise NotReady(f"{url} not answering after {timeout:.0f} s: {last}")


def process_alive(proc: subprocess.Popen) -> Callable[[], bool]:
    return lambda: proc.poll() is None
