"""Logs as the cluster's pipeline takes them (issue #29): the image's entry point starts
TorchServe with config/log4j2-stdout.xml, so the server, access and model logs come out on stdout
as one JSON object per line, and nothing is written under LOG_LOCATION (the pod's emptyDir)."""
from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from stackctl import paths
from stackctl.serve import readiness
from stackctl.serve.native import NativeStack, Ports, torchserve_command

DIGIT = (paths.ROOT / "tests" / "data" / "digit-7.png").read_bytes()
# What is not log4j's, printed once at start: the Python launcher's notice about vmargs, the
# JVM's, TorchServe's frontend's own System.out lines, and our entry point's.
NOT_LOG4J = ("Warning: TorchServe is using non-default JVM parameters", "WARNING: sun.reflect.Reflection",
             "nvidia-smi not available", "Model server started.", "default versions:", "token auth:")
FIELDS = {"time", "level", "logger", "thread", "message", "exception"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    stack = NativeStack(run_dir=tmp_path_factory.mktemp("jsonlogs"), ports=Ports.free())
    command = [sys.executable, "-m", "stackctl.serve.container", *torchserve_command(stack.model_store)]
    try:
        proc = stack.start_torchserve(command=command)
        readiness.wait_until_ready(stack.management_url, {"digits", "langid"}, 300, readiness.process_alive(proc))
        for _ in range(3):
            assert requests.post(f"{stack.inference_url}/predictions/digits", data=DIGIT,
                                 headers={"Content-Type": "image/png"}, timeout=60).status_code == 200
        # A request the handler refuses: its warning is a model log line.
        assert requests.post(f"{stack.inference_url}/predictions/digits", data=b"not an image",
                             headers={"Content-Type": "image/png"}, timeout=60).status_code == 400
        yield stack
    finally:
        stack.stop_all()


def _records(stack: NativeStack, want: str, deadline_s: float = 30) -> list[dict]:
    """The JSON lines of TorchServe's output, once one from logger `want` has arrived."""
    end = time.monotonic() + deadline_s
    while True:
        lines = (stack.run_dir / "torchserve.out").read_text(errors="replace").splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        if any(r["logger"] == want for r in records) or time.monotonic() > end:
            return records
        time.sleep(0.5)


def test_every_log4j_line_is_one_json_object(served: NativeStack) -> None:
    lines = (served.run_dir / "torchserve.out").read_text(errors="replace").splitlines()
    records = []
    for line in lines:
        if line.startswith("{"):
            records.append(json.loads(line))   # raises on a line that is not one JSON object
        else:
            assert line.startswith(NOT_LOG4J), line
    assert len(records) > 10
    assert all(set(r) == FIELDS for r in records)
    assert all(r["time"].endswith("Z") and r["level"] in {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
               for r in records)


def test_access_model_and_server_logs_are_there(served: NativeStack) -> None:
    records = _records(served, "ACCESS_LOG")
    loggers = Counter(r["logger"].split(".")[0] if r["logger"].startswith("org.") else r["logger"] for r in records)
    assert loggers["ACCESS_LOG"] >= 4 and loggers["MODEL_LOG"] >= 1 and loggers["org"] >= 1, loggers
    access = [r["message"] for r in records if r["logger"] == "ACCESS_LOG"]
    assert any('"POST /predictions/digits HTTP/1.1" 200' in m for m in access), access[-5:]
    assert any('"POST /predictions/digits HTTP/1.1" 400' in m for m in access), access[-5:]


def test_nothing_is_written_under_the_log_location(served: NativeStack) -> None:
    logs = served.run_dir / "logs"
    written = [p for p in Path(logs).rglob("*") if p.is_file()] if logs.is_dir() else []
    assert written == [], written
