"""Device, threads and model construction for a worker process."""
from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)


def select_device(properties: dict[str, Any]) -> torch.device:
    """TorchServe assigns `gpu_id` when the host has GPUs; use it only if CUDA really works. A
    GPU deployment (STACK_REQUIRE_CUDA=1) without CUDA fails the load instead (device_check)."""
    from handlers.device_check import check

    refused = check()
    if refused:
        raise RuntimeError(refused)
    gpu_id = properties.get("gpu_id")
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{int(gpu_id)}")
    return torch.device("cpu")


def usable_cores() -> int:
    """Cores this process may run on, honouring affinity and a cgroup v2 CPU quota (containers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def thread_count(setting: Any, workers_on_host: int, cores: int) -> int:
    """`torch_threads: auto` shares the cores among all workers on the host; an int is taken as is."""
    if isinstance(setting, int) and setting > 0:
        return setting
    return max(1, cores // max(1, workers_on_host))


def configure_threads(setting: Any, own_workers: int, workers_on_host: int | None = None) -> int:
    # How many workers share the host: the launcher's STACK_WORKERS_PER_HOST when set (native
    # runs), else the count recorded in the archive at build time, else this model's own.
    workers = int(os.environ.get("STACK_WORKERS_PER_HOST") or workers_on_host or own_workers)
    threads = thread_count(setting, workers, usable_cores())
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    return threads


def build_model(architecture: str, arguments: dict[str, Any], num_classes: int) -> torch.nn.Module:
    """'package.module:Class' (models/ in the archive) or 'torchvision:<arch>' -> an nn.Module."""
    if architecture.startswith("torchvision:"):
        import torchvision

        name = architecture.split(":", 1)[1]
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **arguments)
    module_name, _, class_name = architecture.partition(":")
    if not class_name:
        raise ValueError(f"architecture must be 'module:Class' or 'torchvision:<arch>', got {architecture!r}")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(num_classes=num_classes, **arguments)


def load_model(architecture: str | None, arguments: dict[str, Any], weights_path: Path,
               num_classes: int, device: torch.device) -> torch.nn.Module:
    """The model to serve: a torch.export program (`.pt2`, graph and weights in one file, no
    Python class), or `architecture` built here and its state_dict loaded into it."""
    if Path(weights_path).suffix == ".pt2":
        return load_exported(weights_path, device)
    if not architecture:
        raise ValueError(f"{Path(weights_path).name} is a state_dict: the spec needs model.architecture")
    return load_weights(build_model(architecture, arguments, num_classes), weights_path, device)


def load_exported(path: Path, device: torch.device) -> torch.nn.Module:
    # An exported program is already in inference form (export traced it in eval mode), and its
    # module refuses .eval()/.train(); .to(device) moves its parameters and buffers.
    return torch.export.load(str(path)).module().to(device)


def load_weights(model: torch.nn.Module, weights_path: Path, device: torch.device) -> torch.nn.Module:
    # weights_only=True: a state_dict is plain tensors; refusing pickled code closes that hole.
    state = torch.load(weights_path, map_location=device, weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()


def fuse_conv_bn(model: torch.nn.Module) -> torch.nn.Module:
    """Fold each eval-mode BatchNorm into the convolution before it (same answers, fewer ops).

    In eager mode a BatchNorm after a convolution is a separate pass over the activations; folded
    into the convolution's weights it costs nothing (mobilenet_v3_small on 1 CPU thread: 1.2-1.4x
    faster). Uses torch.fx tracing; a model that FX cannot trace (data-dependent control
    flow) is served unfused rather than refused.
    """
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model)
    except Exception as err:  # noqa: BLE001  (any tracing failure: serve the model as it is)
        logger.warning("conv-bn fusion skipped, %s cannot be traced: %s", type(model).__name__, err)
        return model


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` on `device`; to CUDA through pinned memory, so the copy does not block the host."""
    if tensor.device == device:
        return tensor
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor
