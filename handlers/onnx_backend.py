"""ONNX Runtime for sequence models on the CPU: `handler.backend: onnxruntime` in a model spec.

Why: ATen's GRU pays a fixed cost per time step and direction (~27 µs on the bench's CPU) that
dwarfs a 64-unit cell's arithmetic, so a 250-character text costs 13.5 ms at batch 1. ONNX
Runtime's GRU kernel runs the same recurrence in one native loop: 8-9x less per item at batch 1.
Its kernel computes every item of a batch for the batch's longest
length, so a mixed batch runs as groups of similar lengths instead (`length_groups`).

The model provides its own graph (`model.to_onnx() -> bytes`). The worker checks the session's
logits against the PyTorch model once at start and serves with PyTorch, with a warning, when
they differ, when onnxruntime is not installed, or on a GPU (where cuDNN's GRU is the fast path).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from handlers.settings import HandlerSettings

logger = logging.getLogger(__name__)

# A group may hold lengths up to SPREAD x its shortest (+ SLACK characters): the padding it computes
# stays under ~25% of the work, and short texts never wait on a long one. MAX_GROUP bounds one call.
SPREAD = 1.25
SLACK = 2
MAX_GROUP = 32
# Largest |logit| difference from PyTorch accepted at start (float32 sums in another order: ~1e-6).
TOLERANCE = 1e-4


def length_groups(lengths: Sequence[int], spread: float = SPREAD, slack: int = SLACK,
                  max_group: int = MAX_GROUP) -> list[list[int]]:
    """Indices of `lengths` in groups of similar length, shortest first; every index once."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    for index in order:
        group = groups[-1] if groups else None
        if (group is None or len(group) >= max_group
                or lengths[index] > spread * lengths[group[0]] + slack):
            groups.append([index])
        else:
            group.append(index)
    return groups


class SequenceSession:
    """Runs id sequences through an ONNX Runtime session; logits come back in input order."""

    def __init__(self, model_bytes: bytes, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        # Idle threads sleep instead of spinning, as OMP_WAIT_POLICY=PASSIVE does for torch: the
        # cores are shared with the frontend and other workers.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        self.classes = int(self.session.get_outputs()[0].shape[1])

    def __call__(self, sequences: Sequence[torch.Tensor]) -> torch.Tensor:
        arrays = [np.asarray(s, dtype=np.int64) for s in sequences]
        lengths = [len(a) for a in arrays]
        logits = np.empty((len(arrays), self.classes), dtype=np.float32)
        for group in length_groups(lengths):
            ids = np.zeros((len(group), max(lengths[i] for i in group)), dtype=np.int64)
            for row, i in enumerate(group):
                ids[row, :lengths[i]] = arrays[i]
            group_lengths = np.array([lengths[i] for i in group], dtype=np.int64)
            logits[group] = self.session.run(None, {"ids": ids, "lengths": group_lengths})[0]
        return torch.from_numpy(logits)


def probe_sequences(vocab_size: int, seed: int = 0) -> list[torch.Tensor]:
    """Seeded id sequences of lengths 1..200 (ids 2.. are characters; 0 pads, 1 is unknown)."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(1, vocab_size, (n,), generator=generator) for n in (1, 2, 3, 7, 19, 40, 41, 120, 200)]


def sequence_backend(name: str, model: torch.nn.Module, device: torch.device, threads: int,
                     reference: Callable[[list[torch.Tensor]], torch.Tensor],
                     probes: list[torch.Tensor]) -> SequenceSession | None:
    """An ONNX Runtime session for `model` if it can serve here and agrees with `reference`."""
    if device.type != "cpu":
        logger.info("model %s: backend onnxruntime applies to the CPU; serving with PyTorch on %s", name, device)
        return None
    to_onnx = getattr(model, "to_onnx", None)
    if to_onnx is None:
        logger.warning("model %s: %s has no to_onnx(); serving with PyTorch", name, type(model).__name__)
        return None
    try:
        session = SequenceSession(to_onnx(), threads)
    except ImportError as err:
        logger.warning("model %s: onnxruntime unavailable (%s); serving with PyTorch", name, err)
        return None
    with torch.inference_mode():
        expected = reference(probes)
    difference = float((session(probes) - expected).abs().max())
    if not difference <= TOLERANCE:
        logger.warning("model %s: onnxruntime logits differ from PyTorch's by %.2e (> %.0e); serving with "
                       "PyTorch", name, difference, TOLERANCE)
        return None
    logger.info("model %s: serving with onnxruntime (max logit difference from PyTorch %.1e)", name, difference)
    return session


def backend_setting(config: dict[str, Any]) -> str:
    """The `handler.backend` of a handler section (checked by HandlerSettings)."""
    return HandlerSettings.from_config(config).backend
