"""What the numbers were measured on: CPU model, cores, versions, device, and how busy the host was."""
from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.peers import BENTOML_PYTHON


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _venv_version(package: str, python: Path) -> str | None:
    """A package's version in another venv (BentoML's own), or None where that venv is missing."""
    import subprocess

    if not python.is_file():
        return None
    found = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
                           capture_output=True, text=True, timeout=60)
    return found.stdout.strip() or None if found.returncode == 0 else None


def describe() -> dict[str, Any]:
    import psutil
    import torch

    from handlers.runtime import usable_cores

    cuda = torch.cuda.is_available()
    return {
        "cpu_model": cpu_model(),
        "cores_usable": usable_cores(),
        "cpus_logical": psutil.cpu_count(logical=True),
        "cpus_physical": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        # TorchServe assigns gpu_id when the host has GPUs; the handlers then run on cuda:<gpu_id>.
        "device": f"cuda ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} GPU)" if cuda else "cpu",
        "gpu_model": torch.cuda.get_device_name(0) if cuda else None,
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "torchserve": _version("torchserve"),
        "locust": _version("locust"),
        "fastapi": _version("fastapi"),
        "uvicorn": _version("uvicorn"),
        "litserve": _version("litserve"),
        "bentoml": _venv_version("bentoml", BENTOML_PYTHON),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "java": os.environ.get("JAVA_HOME", "java on PATH"),
    }


def load_average() -> list[float]:
    """1/5/15-minute load average: other work on the host makes absolute numbers noisy."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []
