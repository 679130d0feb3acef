"""`make serve RUNTIME=triton`: Triton Inference Server on loopback over the same archives.

tritonserver (2.51, from .venv-triton: the nvidia-pytriton wheel) serves the repository that
stackctl/serve/triton_repo.py generates, on the stack's ports: the Open Inference Protocol over
REST on the inference port (8080), over gRPC on 7070, Prometheus metrics on 8082 (INFERENCE_PORT,
GRPC_PORT, METRICS_PORT override them). Ready = Triton's /v2/health/ready (every model loaded and
ready). Processes, pid files and ports are NativeStack's (stackctl/serve/native.py), in run/;
`make stop` stops it with the rest.

What the wheel needs to run here (measured, docs/triton.md):
- LD_LIBRARY_PATH: the wheel's nvidia_pytriton.libs and Python's LIBDIR (the stub embeds libpython);
- a backend folder with libtriton_python.so, triton_python_backend_utils.py and the Python 3.11
  stub (the wheel keeps the stubs apart, per Python version);
- numpy 1 for the stub: it is built against numpy 1 and crashes on numpy 2's arrays. It ignores
  PYTHONPATH (an isolated interpreter) and its path starts with '' (its working directory), so it
  runs in a folder holding links to .venv-triton's numpy 1.26; `model.py` adds the rest.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackctl import paths
from stackctl.serve import readiness, triton_repo
from stackctl.serve.native import NativeStack, Ports, port_in_use

NAME = "tritonserver"
TRITON_DIR = paths.BUILD / "triton"


def triton_venv() -> Path:
    return paths.ROOT / os.environ.get("TRITON_VENV", ".venv-triton")


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


@dataclass(frozen=True)
class TritonFiles:
    """Where the server's pieces are: the wheel's install and the folders built under `build`."""

    venv: Path
    build: Path = TRITON_DIR

    @property
    def wheel(self) -> Path:
        return site_packages(self.venv) / "pytriton" / "tritonserver"

    @property
    def binary(self) -> Path:
        return self.wheel / "bin" / "tritonserver"

    @property
    def backends(self) -> Path:
        return self.build / "backends"

    @property
    def stub_path(self) -> Path:
        return self.build / "stub-path"

    def missing(self) -> str | None:
        if not self.binary.is_file():
            return f"{self.binary} is missing: run `make triton-venv`"
        return None

    def prepare(self) -> None:
        """The backend folder (library, utilities, the 3.11 stub) and the stub's numpy links."""
        python = self.backends / "python"
        python.mkdir(parents=True, exist_ok=True)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        for source in (self.wheel / "backends" / "python" / "libtriton_python.so",
                       self.wheel / "backends" / "python" / "triton_python_backend_utils.py",
                       self.wheel / "python_backend_stubs" / version / "triton_python_backend_stub"):
            # Copied beside, then renamed over: a stub still running from an earlier server keeps
            # its file open ("Text file busy" on a copy over it).
            shutil.copy2(source, python / f".{source.name}.new")
            os.replace(python / f".{source.name}.new", python / source.name)
        self.stub_path.mkdir(parents=True, exist_ok=True)
        for name in ("numpy", "numpy.libs"):
            link = self.stub_path / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(site_packages(self.venv) / name)

    def env(self) -> dict[str, str]:
        libs = [str(site_packages(self.venv) / "nvidia_pytriton.libs"), str(sysconfig.get_config_var("LIBDIR"))]
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = ":".join(libs + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []))
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as for TorchServe's workers (native.py)
        env["PYTHONUNBUFFERED"] = "1"
        return env


def triton_command(files: TritonFiles, repo: Path, ports: Ports, host: str) -> list[str]:
    return [str(files.binary), f"--model-repository={repo}", f"--backend-directory={files.backends}",
            f"--http-address={host}", f"--http-port={ports.inference}",
            f"--grpc-address={host}", f"--grpc-port={ports.oip_grpc}",
            f"--metrics-address={host}", f"--metrics-port={ports.metrics}",
            "--allow-metrics=true", "--exit-timeout-secs=5", "--log-info=false"]


class TritonStack(NativeStack):
    """NativeStack's process handling, with tritonserver as its one server."""

    def start_triton(self, files: TritonFiles, repo: Path) -> subprocess.Popen:
        for port in (self.ports.inference, self.ports.oip_grpc, self.ports.metrics):
            if port_in_use(port, self.host):
                raise RuntimeError(f"port {port} is already in use on {self.host}; set INFERENCE_PORT/"
                                   "GRPC_PORT/METRICS_PORT or stop what is there")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._save_ports()
        return self._spawn(NAME, triton_command(files, repo, self.ports, self.host), files.env(), cwd=files.stub_path)

    def wait_for_triton(self, proc: subprocess.Popen, timeout: float = 180.0) -> None:
        readiness.wait_for_http(f"{self.inference_url}/v2/health/ready", timeout, readiness.process_alive(proc))


def launch(stack: TritonStack, files: TritonFiles, timeout: float = 180.0) -> dict[str, Any]:
    """Backend folder, repository (from stack.model_store), tritonserver, readiness: the version
    mapping once every model is ready; raises NotReady (the server stopped) otherwise."""
    files.prepare()
    mapping = triton_repo.generate(stack.model_store, files.build / "repo")
    proc = stack.start_triton(files, files.build / "repo")
    try:
        stack.wait_for_triton(proc, timeout)
    except readiness.NotReady:
        stack.stop(NAME)
        raise
    return mapping


def serve(timeout: float = 180.0, store: Path = paths.MODEL_STORE) -> int:
    """`make serve RUNTIME=triton`: launch on the stack's ports, print the mapping and the URLs."""
    files = TritonFiles(triton_venv())
    stack = TritonStack(run_dir=paths.RUN, ports=Ports.from_env(), model_store=store)
    if stack.running(NAME) or stack.running("torchserve"):
        print("A stack is already running here: `make stop` first.", file=sys.stderr)
        return 1
    if problem := files.missing():
        print(problem, file=sys.stderr)
        return 1
    started = time.monotonic()
    try:
        mapping = launch(stack, files, timeout)
    except readiness.NotReady as exc:
        print(f"Triton did not become ready: {exc}\nSee {paths.shown(stack.run_dir)}/{NAME}.out.", file=sys.stderr)
        return 1
    print(triton_repo.describe(mapping))
    print(f"""
Triton Inference Server is ready in {time.monotonic() - started:.1f} s (models: {', '.join(mapping['models'])}).
  inference   {stack.inference_url}/v2/models/<model>/infer   (Open Inference Protocol, REST)
  gRPC        {stack.host}:{stack.ports.oip_grpc}                   (inference.GRPCInferenceService)
  metrics     {stack.metrics_url}/metrics   (nv_inference_* and the handler_* histograms, runtime="triton")
  repository  {paths.shown(files.build / 'repo')}   (versions: {triton_repo.VERSIONS_FILE})
No /predictions and no management API on this runtime (docs/triton.md).
Stop with: make stop""")
    return 0
