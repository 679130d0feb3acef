"""The image's entry point under tini: runs the TorchServe launcher and makes `docker stop` a drain.

    tini -- python -m stackctl.container torchserve --foreground ...

* Stop: tini passes SIGTERM to this process only. It goes to the JVM alone, which finishes the
  requests in flight, stops its workers and exits; the launcher (which forwards no signals and
  would die at once, taking the container with it) then returns. TorchServe has no drain of its
  own: connections that arrive after the signal are refused (or reset, if the kernel had queued
  them), so a load balancer must drop the endpoint first (k8s: preStop).
* Token auth: TorchServe writes key_file.json into its working directory. Under a read-only root
  that fails and the server exits 0, so with auth on the server runs in TS_KEY_DIR (the image
  sets /tmp, which must be a writable tmpfs under a read-only root) after the relative paths it
  would resolve against /app are made absolute. The image also sets TS_KEY_FILE there, so its
  health check finds the management key.
* A server that stops on its own is a failure, whatever its exit status, so restart policies and
  orchestrators notice.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlparse

import psutil

DISABLE_FLAG = "--disable-token-auth"
# Settings TorchServe resolves against its working directory (config.properties, log4j).
# As long as a cold GPU start may take (the image's health check allows 120 s, k8s' startupProbe more).
DEFAULTS_TIMEOUT_S = 600.0
RELATIVE_SETTINGS = {"TS_METRICS_CONFIG": "config/metrics.yaml", "LOG_LOCATION": "logs",
                     "METRICS_LOCATION": "logs"}


def token_auth_on(command: list[str], env: dict[str, str]) -> bool:
    return DISABLE_FLAG not in command and env.get("TS_DISABLE_TOKEN_AUTHORIZATION", "").lower() == "false"


def server_workdir(command: list[str], env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """Where the server runs, and its environment: here, unless token auth needs a writable place
    (TS_KEY_DIR if set, else here if writable, else the temp dir)."""
    here = Path.cwd()
    if not token_auth_on(command, env):
        return here, env
    key_dir = Path(env.get("TS_KEY_DIR") or (here if os.access(here, os.W_OK) else tempfile.gettempdir()))
    if key_dir == here:
        return here, env
    moved = dict(env)
    for name, relative in RELATIVE_SETTINGS.items():
        moved.setdefault(name, str(here / relative))
    print(f"token auth: TorchServe runs in {key_dir} and writes its keys to {key_dir / 'key_file.json'}",
          file=sys.stderr, flush=True)
    return key_dir, moved


def jvms(launcher: psutil.Process) -> list[psutil.Process]:
    try:
        return [p for p in launcher.children(recursive=True) if p.name() == "java"]
    except psutil.NoSuchProcess:
        return []


def name_default_versions(command: list[str], env: dict[str, str]) -> threading.Thread | None:
    """When the store holds several versions of a model, name <name>.mar's version the default
    once the server is ready (stackctl.versions: TorchServe would pick by file-system order).
    A thread, so that this process stays free to pass on the stop signal; None when no model has
    several versions."""
    from stackctl import readiness, versions
    from stackctl.token_auth import management_token

    store = Path(command[command.index("--model-store") + 1]) if "--model-store" in command else None
    if store is None or not versions.default_versions(store):
        return None
    port = urlparse(env.get("TS_MANAGEMENT_ADDRESS", "http://127.0.0.1:8081")).port or 8081
    url = f"http://127.0.0.1:{port}"

    def run() -> None:
        try:
            readiness.wait_until_ready(url, timeout=DEFAULTS_TIMEOUT_S)
            applied = versions.apply_default_versions(url, store, management_token())
            print("default versions: " + ", ".join(f"{n} {v}" for n, v in applied.items()), file=sys.stderr, flush=True)
        except Exception as exc:  # noqa: BLE001 (a server that never got ready says why in its own log)
            print(f"default versions not set: {exc}", file=sys.stderr, flush=True)

    thread = threading.Thread(target=run, name="default-versions", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        print("usage: python -m stackctl.container torchserve --foreground ...", file=sys.stderr)
        return 2
    workdir, env = server_workdir(command, dict(os.environ))
    launcher: subprocess.Popen | None = None
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if launcher is None:
            return   # a signal during the start: handled right after it
        try:
            root = psutil.Process(launcher.pid)
            # Before the JVM exists there is nothing to drain: stop the launcher itself.
            for process in jvms(root) or [root]:
                process.send_signal(signum)
        except psutil.NoSuchProcess:
            pass   # already gone: wait() below returns

    # Handlers first: a stop that arrives while the launcher starts must not kill this process.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    launcher = subprocess.Popen(command, cwd=workdir, env=env)
    name_default_versions(command, env)
    if stopping:
        stop(signal.SIGTERM, None)
    status = launcher.wait()
    if stopping:
        return 0 if status in (0, -signal.SIGTERM, 128 + signal.SIGTERM, 143) else status
    print(f"torchserve stopped on its own (exit status {status}); see the log above",
          file=sys.stderr, flush=True)
    return status or 1


if __name__ == "__main__":
    sys.exit(main())
