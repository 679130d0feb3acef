"""The peers `make bench` compares TorchServe with, as data: each runs the archive's handler
(decode, forward, top-k) with TorchServe's worker count and threads per worker for the model, on
the same bodies and the same load generator, so only the serving layer differs.

* fastapi: FastAPI + uvicorn, one request at a time per process (fastapi_peer.py);
* litserve: LitServe's dynamic batching with TorchServe's batchSize and maxBatchDelay (litserve_peer.py);
* bentoml: BentoML's adaptive batching (bentoml_peer.py), from its own venv (`.venv-bentoml`,
  `make bench-peers`): its pins do not fit beside ours.

A peer that cannot run on a host (not installed, say on a GPU host without network) is reported
as "not run: <reason>", never a crash.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers.settings import ServingSettings
from stackctl import paths

BENTOML_PYTHON = paths.ROOT / ".venv-bentoml" / "bin" / "python"


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    module: str
    batching: bool
    health: str = "/ping"
    venv_python: Path | None = None   # its own interpreter; None: this one
    fixed_window: bool = True         # takes maxBatchDelay; BentoML sizes its batches adaptively

    def python(self) -> str:
        return str(self.venv_python or sys.executable)

    def missing(self) -> str | None:
        """Why this peer cannot run here, or None."""
        if self.venv_python is not None:
            if not self.venv_python.is_file():
                return f"{self.venv_python} missing (make bench-peers)"
            check = subprocess.run([str(self.venv_python), "-c", f"import {self.name}"], capture_output=True,
                                   text=True, timeout=120)
            return None if check.returncode == 0 else f"{self.name} does not import: {check.stderr.strip()[-200:]}"
        return None if importlib.util.find_spec(self.name) else f"{self.name} is not installed"

    def describe(self, serving: ServingSettings) -> dict[str, Any]:
        batching = {"max_batch_size": serving.batch_size,
                    "batch_timeout_ms": float(serving.max_batch_delay) if self.fixed_window else None,
                    } if self.batching else None
        return {"label": self.label, "processes": serving.workers, "batching": batching}

    def command(self, archive: Path, name: str, serving: ServingSettings) -> list[str]:
        d = self.describe(serving)
        command = [self.module, "--archive", str(archive), "--name", name, "--workers", str(d["processes"])]
        if d["batching"]:
            command += ["--max-batch-size", str(d["batching"]["max_batch_size"])]
        if d["batching"] and d["batching"]["batch_timeout_ms"] is not None:
            command += ["--batch-timeout-ms", str(d["batching"]["batch_timeout_ms"])]
        return command


PEERS = [
    Peer("fastapi", "FastAPI peer", "bench.fastapi_peer", batching=False),
    Peer("litserve", "LitServe peer", "bench.litserve_peer", batching=True, health="/health"),
    Peer("bentoml", "BentoML peer", "bench.bentoml_peer", batching=True, health="/readyz",
         venv_python=BENTOML_PYTHON, fixed_window=False),
]
