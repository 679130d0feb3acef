"""stackctl.serve.container, the image's entry point, with real processes: where TorchServe runs when
token auth is on, a server that stops on its own is a failure, and SIGTERM is a clean stop.
The JVM drain itself is measured live (tests/live/test_compose_stack.py)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stackctl import paths
from stackctl.serve import container, front_door
from stackctl.serve.native import free_port

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
    return subprocess.Popen([sys.executable, "-m", "stackctl.serve.container", *server], cwd=paths.ROOT,
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


# --- the front door beside the server ------------------------------------------------------------
needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
                                 reason="nginx is not installed: `make system-deps` installs it")


def test_the_front_door_takes_the_inference_address_and_torchserve_moves_to_loopback(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    monkeypatch.setattr(container.tempfile, "tempdir", str(tmp_path))
    env = {container.FRONT_DOOR: "on", "TS_INFERENCE_ADDRESS": "http://0.0.0.0:8080", container.UPSTREAM_PORT: "18079"}
    plan = container.front_door_plan([*SERVER, "--ts-config", str(paths.SERVER_CONFIG)], env)
    assert plan is not None
    server_env, conf, stop_s = plan
    assert server_env["TS_INFERENCE_ADDRESS"] == "http://127.0.0.1:18079"
    # A graceful stop outlasts every request the door may hold (tests/unit/test_front_door_stop.py).
    assert stop_s == front_door.stop_wait_s(paths.SERVER_CONFIG, env) > front_door.default_response_timeout()
    text = conf.read_text()
    assert "listen 0.0.0.0:8080;" in text and "server 127.0.0.1:18079;" in text
    assert conf.is_relative_to(tmp_path), "config and temp files go to the temp dir (the root may be read-only)"
    assert container.front_door_plan(SERVER, {"TS_INFERENCE_ADDRESS": "http://0.0.0.0:8080"}) is None


def _with_front_door(tmp_path: Path, *server: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(paths.ROOT), "TMPDIR": str(tmp_path), container.FRONT_DOOR: "on",
           "TS_INFERENCE_ADDRESS": f"http://127.0.0.1:{port}", container.UPSTREAM_PORT: str(free_port())}
    entry = subprocess.Popen([sys.executable, "-m", "stackctl.serve.container", *server], cwd=paths.ROOT, env=env)
    return entry, port


def _wait_for_children(entry: subprocess.Popen, names: set[str]) -> dict[str, container.psutil.Process]:
    deadline = time.monotonic() + 30
    while True:
        found = {p.name(): p for p in container.psutil.Process(entry.pid).children()}
        if all(any(n.startswith(name) for n in found) for name in names):
            return {name: next(p for n, p in found.items() if n.startswith(name)) for name in names}
        assert entry.poll() is None and time.monotonic() < deadline, (entry.returncode, found)
        time.sleep(0.05)


@needs_nginx
def test_a_front_door_that_exits_on_its_own_stops_the_server_and_fails(tmp_path: Path) -> None:
    entry, _ = _with_front_door(tmp_path, sys.executable, "-c", "import time; time.sleep(60)")
    try:
        children = _wait_for_children(entry, {"nginx", "python"})
        workers = children["nginx"].children()
        # SIGTERM: nginx stops at once, its workers with it (SIGKILL would orphan the workers).
        children["nginx"].terminate()
        assert entry.wait(timeout=30) != 0
        container.psutil.wait_procs(workers, timeout=10)
        assert not children["python"].is_running() or children["python"].status() == container.psutil.STATUS_ZOMBIE
    finally:
        if entry.poll() is None:
            entry.kill()
            entry.wait()


@needs_nginx
def test_a_server_that_exits_stops_the_front_door_and_sigterm_stops_both_cleanly(tmp_path: Path) -> None:
    entry, _ = _with_front_door(tmp_path, sys.executable, "-c", "import time; time.sleep(2)")
    door = _wait_for_children(entry, {"nginx"})["nginx"]
    assert entry.wait(timeout=30) == 1, "a server that stops on its own is a failure"
    assert not door.is_running()
    entry, port = _with_front_door(tmp_path, sys.executable, "-c", "import time; time.sleep(60)")
    try:
        door = _wait_for_children(entry, {"nginx", "python"})["nginx"]
        entry.send_signal(signal.SIGTERM)
        assert entry.wait(timeout=30) == 0
        assert not door.is_running()
    finally:
        if entry.poll() is None:
            entry.kill()
            entry.wait()
