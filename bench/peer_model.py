"""What every peer runs: the archive's model core, loaded as a TorchServe worker loads it, and the
one decode-and-reject step every peer shares. Imports no web framework, so each peer's own venv
needs only torch and the handlers' needs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from handlers.core import ModelCore
from handlers.inputs import Request
from stackctl.catalog.inprocess import InProcessModel

Answer = tuple[int, dict[str, Any]]  # (HTTP status, JSON body), as TorchServe answers


def load_core(archive: Path) -> ModelCore:
    """The archive's model core, initialised as a TorchServe worker would (device, threads, warm-up)."""
    return InProcessModel(archive, gpu_id=0 if torch.cuda.is_available() else None).handler.core


def request(core: ModelCore, body: bytes, content_type: str | None) -> Request:
    """One upload as the core's own `Request`: a loaded archive brings its own copy of handlers/,
    and the core tells a single-input request from an OIP one (`Instances`) by its class, so a
    Request of this process's copy would be taken for the other kind (and answered 500)."""
    # The defining module's globals (an archive's copy is not the `handlers.core` in sys.modules).
    own = type(core).decode_or_answer.__globals__.get("Request", Request)
    return own(body, content_type)


def decode_or_reject(core: ModelCore, body: bytes, content_type: str | None) -> tuple[Any, Answer | None]:
    """(sample, None), or (None, the 4xx/500 answer TorchServe would give this upload)."""
    sample, result = core.decode_or_answer(request(core, body, content_type))
    return sample, None if result is None else (result.status, result.body)


def answer_uploads(core: ModelCore, uploads: list[tuple[bytes, str | None]]) -> list[Answer]:
    """One answer per (body, Content-Type), the decoded ones run as one batch."""
    return [(result.status, result.body) for result in core.answer([request(core, body, ctype)
                                                                    for body, ctype in uploads])]
