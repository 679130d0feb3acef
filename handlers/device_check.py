"""No silent CPU fallback on a GPU deployment.

A GPU image or overlay sets STACK_REQUIRE_CUDA=1. There, torch without a usable CUDA device is a
broken deployment, not a slow one: the container's entry point refuses to start
(`python -m stackctl.serve.gpu_check`, run by stackctl.serve.container before TorchServe) and a worker
refuses to load its model (handlers/runtime.select_device), each with one line that names the
driver floor and what was found. Without the variable a missing GPU still means the CPU (the
CPU image, native runs, tests).

The floor: torch's wheels carry their own CUDA runtime, so only the kernel driver comes from the
host, and a CUDA 13.0 runtime needs an R580 driver (580.65.06 or newer on Linux; NVIDIA's CUDA
toolkit release notes, "CUDA Toolkit and Corresponding Driver Versions").
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

REQUIRE_ENV = "STACK_REQUIRE_CUDA"

# CUDA runtime (major.minor) -> the oldest Linux driver that runs it (no forward compatibility
# package in our images). Newer minors of a major need at least the major's first floor.
DRIVER_FLOOR = {"13.0": "580.65.06", "12.8": "570.26", "12.6": "560.28.03", "12.4": "550.54.14",
                "12.1": "530.30.02"}


def required(env: dict[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(REQUIRE_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def driver_floor(cuda: str | None) -> str:
    if not cuda:
        return "none: this torch is a CPU-only build, install the CUDA build (cu130)"
    major = cuda.split(".")[0]
    floors = [(v, d) for v, d in DRIVER_FLOOR.items() if v.split(".")[0] == major and v <= cuda]
    return f"driver >= {max(floors)[1]}" if floors else f"a driver for CUDA {cuda}"


def found_driver(proc_version: Path = Path("/proc/driver/nvidia/version")) -> str:
    """The loaded kernel driver's version, as the host reports it, or that there is none."""
    try:
        first = proc_version.read_text().splitlines()[0]
    except (OSError, IndexError):
        return "no NVIDIA driver loaded (/proc/driver/nvidia/version missing: no GPU passed to this container?)"
    words = [w for w in first.split() if w[:1].isdigit() and "." in w]
    return f"NVIDIA driver {words[0]}" if words else first.strip()


def problem() -> str | None:
    """None when CUDA works; else the one line saying what is needed and what was found."""
    with warnings.catch_warnings():   # torch.cuda's pynvml deprecation notice: not our one line
        warnings.simplefilter("ignore", FutureWarning)
        import torch

    cuda = torch.version.cuda
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return None
    reason = ""
    if cuda:
        try:
            torch.cuda.init()
        except Exception as exc:  # noqa: BLE001 (its text is the most precise reason there is)
            reason = "; torch says: " + " ".join(str(exc).split())[:300]
    return (f"{REQUIRE_ENV}=1 but CUDA is not usable: torch {torch.__version__} (CUDA {cuda or 'none'}) "
            f"needs {driver_floor(cuda)}, found {found_driver()}, "
            f"{torch.cuda.device_count() if cuda else 0} CUDA device(s){reason}. "
            "Refusing to serve on the CPU.")


def check(env: dict[str, str] | None = None) -> str | None:
    """The one-line failure when this deployment requires CUDA and has none; None otherwise."""
    return problem() if required(env) else None
