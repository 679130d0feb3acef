"""Readiness: every registered model has at least one READY worker (asked of the management API).

Used by `make serve`, the test fixtures, the container HEALTHCHECK and the Kubernetes probes
(`python -m stackctl ready`), so "ready" means the same thing everywhere.

Start versus later (`probe`, what `stackctl ready` runs): until every model has had a READY
worker once, the server is not ready, so a bad rollout stops at its first pod while the old pods
serve. The first time every model is READY, a marker file is written (`ready_marker`); from then
on ready only needs the management API to answer with the same models registered. A model that
later loses its workers then fails only its own requests (503 from the front door) instead of
taking every replica out of the Service, since every replica carries it. The launchers
(stackctl.serve.container, stackctl.serve.native) remove the marker before they start TorchServe, so a
restarted server must load every model again.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

T = TypeVar("T")

MARKER_ENV = "STACK_READY_MARKER"


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
    versions (stackctl.catalog.versions) is listed once per version, as "<name>/<version>"."""
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


def ready_marker(management_url: str, env: dict[str, str] | None = None) -> Path:
    """Where "every model was READY once" is recorded for the server at `management_url`:
    $STACK_READY_MARKER, else a file named after the management port in the temp dir (the probe
    and the entry point share both, in one container)."""
    env = dict(os.environ) if env is None else env
    if env.get(MARKER_ENV):
        return Path(env[MARKER_ENV])
    port = urlparse(management_url).port or 8081
    return Path(env.get("TMPDIR") or tempfile.gettempdir()) / f"stackctl-ready-{port}.json"


def clear_marker(management_url: str, env: dict[str, str] | None = None) -> None:
    ready_marker(management_url, env).unlink(missing_ok=True)


def probe(management_url: str, expected: set[str] | None = None, token: str | None = None,
          timeout: float = 2.0, marker: Path | None = None) -> tuple[dict[str, list[str]], list[str]]:
    """(status, models without a READY worker). Before the marker exists this is check_ready,
    which writes the marker when it passes; after, the API must answer with every model the
    marker lists still registered, and models without a READY worker are reported, not fatal."""
    marker = marker or ready_marker(management_url)
    try:
        registered = set(json.loads(marker.read_text())["models"])
    except (OSError, ValueError, KeyError, TypeError):
        status = check_ready(management_url, expected, token, timeout)
        models = sorted({key.split("/")[0] for key in status})
        try:
            marker.write_text(json.dumps({"models": models}) + "\n")
        except OSError as exc:   # read-only: stays strict, which is safe
            print(f"ready marker {marker} not written: {exc}", flush=True)
        return status, []
    try:
        status = model_status(management_url, token, timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise NotReady(f"management API at {management_url} not answering: {exc}") from None
    missing = sorted((registered | (expected or set())) - {key.split("/")[0] for key in status})
    if missing:
        raise NotReady(f"models no longer registered: {', '.join(missing)}")
    return status, sorted(name for name, workers in status.items() if "READY" not in workers)


def poll(attempt: Callable[[], T], timeout: float, interval: float, alive: Callable[[], bool] | None,
         died: str, gave_up: str) -> T:
    """`attempt()` until it returns instead of raising NotReady; fail fast when `alive()` says the
    server process died (Triton's pattern), else after `timeout` s, with the last reason."""
    deadline = time.monotonic() + timeout
    last = "not polled yet"
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise NotReady(f"{died} ({last})")
        try:
            return attempt()
        except NotReady as exc:
            last = str(exc)
        time.sleep(interval)
    raise NotReady(f"{gave_up} after {timeout:.0f} s: {last}")


def wait_until_ready(management_url: str, expected: set[str] | None = None, timeout: float = 180.0,
                     alive: Callable[[], bool] | None = None, token: str | None = None,
                     interval: float = 0.5) -> dict[str, list[str]]:
    """Poll until ready (check_ready)."""
    return poll(lambda: check_ready(management_url, expected, token), timeout, interval, alive,
                "server process exited while waiting for readiness", "not ready")


def wait_for_http(url: str, timeout: float = 60.0, alive: Callable[[], bool] | None = None,
                  interval: float = 0.25, accepted: Callable[[int], bool] | None = None) -> None:
    """Poll a URL until it answers 2xx (e.g. Prometheus's /-/ready), or a status `accepted` takes."""
    def answered() -> None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                if 200 <= response.status < 300:
                    return
                raise NotReady(f"HTTP {response.status}")
        except urllib.error.HTTPError as exc:
            if accepted is not None and accepted(exc.code):
                return
            raise NotReady(str(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise NotReady(str(exc)) from None

    poll(answered, timeout, interval, alive, f"process serving {url} exited", f"{url} not answering")


def process_alive(proc: subprocess.Popen) -> Callable[[], bool]:
    return lambda: proc.poll() is None
