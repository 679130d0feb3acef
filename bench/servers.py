"""The servers under test, each on free loopback ports and always stopped: TorchServe (through
stackctl.serve.native, the code `make serve` uses) on a bench model store, and the FastAPI peer.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from handlers.runtime import usable_cores
from handlers.sections import override, written
from handlers.settings import HandlerSettings, ServingSettings
from stackctl import paths
from stackctl.catalog.archive import write_variant
from stackctl.catalog.specs import ModelSpec
from stackctl.serve import readiness
from stackctl.serve.native import NativeStack, Ports, free_port

# Workers must not spin-wait for CPU they share with the frontend and the load generator: libgomp's
# default (active) waiting made 2 intra-op threads ~10x slower than 1 on a busy 2-core host
# (bench/NOTES.md). Applied to every process the bench measures: in-process, TorchServe, peer.
RUNTIME_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def threads_for(handler: HandlerSettings, workers: int) -> int:
    """`torch_threads: auto` for a model alone on this host: its workers share the cores."""
    setting = handler.torch_threads
    return int(setting) if isinstance(setting, int) and setting > 0 else max(1, usable_cores() // workers)


def variant(spec: ModelSpec, archive: Path, store: Path, name: str, serving: ServingSettings | None = None,
            handler: HandlerSettings | None = None) -> Path:
    """The archive under `name` with the spec's current serving and handler settings, or these
    (the spec's, overridden: handlers.sections.override); `torch_threads: auto` made a number."""
    serving = serving or spec.serving
    handler = handler or spec.handler
    handler = override(handler, torch_threads=threads_for(handler, serving.workers))
    return write_variant(archive, store, name, written(serving), written(handler))


@contextlib.contextmanager
def torchserve(store: Path, run_dir: Path, workers_on_host: int, timeout: float = 300.0,
               env: dict[str, str] | None = None) -> Iterator[tuple[NativeStack, float]]:
    """A ready TorchServe serving every archive in `store`; yields (stack, seconds until ready).

    Without the front door (nginx): the benchmark measures TorchServe's own serving layer against
    peers that have no proxy in front either, and clients of the bench send proper content types."""
    stack = NativeStack(run_dir=run_dir, ports=Ports.free(), model_store=store, front_door=False)
    extra = {**RUNTIME_ENV, "STACK_WORKERS_PER_HOST": str(workers_on_host), **(env or {})}
    started = time.monotonic()
    proc = stack.start_torchserve(extra_env=extra)
    try:
        expected = {p.stem for p in store.glob("*.mar")}
        readiness.wait_until_ready(stack.management_url, expected, timeout, readiness.process_alive(proc),
                                   interval=0.1)
        ready = time.monotonic() - started
        stack.proc = proc  # type: ignore[attr-defined]
        yield stack, ready
    except readiness.NotReady as exc:
        log = run_dir / "torchserve.out"
        tail = log.read_text(errors="replace")[-3000:] if log.is_file() else ""
        raise RuntimeError(f"TorchServe on {store} did not become ready: {exc}\n{tail}") from None
    finally:
        stack.stop("torchserve")


@contextlib.contextmanager
def peer(command: list[str], run_dir: Path, health: str = "/ping", python: str = sys.executable,
         timeout: float = 180.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """A peer server (`python -m <command> --port P`) until its `health` path answers; yields (base URL, process).

    The peer's process group is stopped on exit: uvicorn's and LitServe's worker processes with it.
    """
    port = free_port()
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **RUNTIME_ENV, "STACK_WORKERS_PER_HOST": "1", "PYTHONUNBUFFERED": "1"}
    with open(run_dir / "peer.out", "ab") as log:
        proc = subprocess.Popen([python, "-m", *command, "--port", str(port)],
                                cwd=paths.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            readiness.wait_for_http(f"{url}{health}", timeout, readiness.process_alive(proc), interval=0.1)
        except readiness.NotReady as exc:
            tail = (run_dir / "peer.out").read_text(errors="replace").strip()
            raise PeerNotRun(f"{exc}: {tail.splitlines()[-1] if tail else 'no output'}") from None
        yield url, proc
    finally:
        _stop_group(proc)


class PeerNotRun(RuntimeError):
    """A peer that did not start here (not installed, failed to import): reported, not fatal."""


def _stop_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # Workers that outlive their parent (LitServe's) are in the same session: end them too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_limit(archive: Path, payload_file: Path, out: Path, seconds: float, batch_sizes: list[int],
              configs: list[tuple[int, int]], timeout: float = 900.0) -> None:
    """bench.limit in its own process, at each (processes, torch threads) configuration (see limit.py)."""
    env = {**os.environ, **RUNTIME_ENV, "STACK_WORKERS_PER_HOST": "1"}
    subprocess.run([sys.executable, "-m", "bench.limit", "--archive", str(archive), "--payloads", str(payload_file),
                    "--seconds", str(seconds), "--batch-sizes", ",".join(map(str, batch_sizes)),
                    "--configs", ",".join(f"{p}x{t}" for p, t in configs), "--out", str(out)],
                   cwd=paths.ROOT, env=env, check=True, timeout=timeout)
