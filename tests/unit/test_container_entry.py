"""stackctl.container, the image's entry point, with real processes: where TorchServe runs when
token auth is on, a server that stops on its own is a failure, and SIGTERM is a clean stop.
The JVM drain itself is measured live (tests/live/test_compose_stack.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from stackctl import container, paths

SERVER = ["torchserve", "--foreground", "--models", "all"]


def test_auth_off_runs_where_it_was_started(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"TS_KEY_DIR": "/elsewhere"}
    assert container.server_workdir([*SERVER, "--disable-token-auth"], env) == (tmp_path, env)
    assert container.server_workdir(SERVER, env) == (tmp_path, env), "auth is on only when asked for"


def test_auth_on_runs_in_the_key_dir_with_absolute_paths(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    keys = tmp_path / "keys"
    workdir, env = container.server_workdir(SERVER, {"TS_DISABLE_TOKEN_AUTHORIZATION": "false", "TS_KEY_DIR": str(keys)})
    assert workdir == keys
    assert env["TS_METRICS_CONFIG"] == str(tmp_path / "config" / "metrics.yaml")
    assert env["LOG_LOCATION"] == str(tmp_path / "logs")


def entry_point(*server: str) -> subprocess.Popen:
    # A child process: main() installs signal handlers, which must not land in pytest's own.
    return subprocess.Popen([sys.executable, "-m", "stackctl.container", *server], cwd=paths.ROOT,
                            env={**os.environ, "PYTHONPATH": str(paths.ROOT)})


def test_a_server_that_exits_on_its_own_is_a_failure() -> None:
    assert entry_point(sys.executable, "-c", "pass").wait(timeout=60) == 1
    assert entry_point(sys.executable, "-c", "raise SystemExit(3)").wait(timeout=60) == 3


def test_sigterm_is_a_clean_stop() -> None:
    entry = entry_point(sys.executable, "-c", "import time; time.sleep(60)")
    try:
        # Wait until the child exists, so the signal goes through the handler, not to a bare start.
        deadline = time.monotonic() + 30
        while not any(p.name().startswith("python") for p in container.psutil.Process(entry.pid).children()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        entry.send_signal(signal.SIGTERM)
        assert entry.wait(timeout=30) == 0
    finally:
        if entry.poll() is None:
            entry.kill()
            entry.wait()
