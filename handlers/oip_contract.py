"""The Open Inference Protocol (v2) contract of our classifiers: tensor names, datatypes, shapes.

The one place that says what a model takes and answers over v2 (issue #25, docs/protocol.md):
the handlers validate requests against it (`handlers/oip.py`) and the OIP gateway and the KServe
rendering describe models from it (`tensors`). Pure data: no torch, no TorchServe, so a process
that only renders metadata can import it.

- image models: one input `image`, BYTES, shape [N] or [N, 1]: each element an encoded image file
  (binary extension: the file's bytes; JSON: its base64, as /predictions' JSON body takes it);
- text models: one input `text`, BYTES, shape [N] or [N, 1]: UTF-8 strings;
- every model: outputs `label` (BYTES) and `probability` (FP32), shape [N, k], best first, k the
  spec's `top_k` (a request's `parameters.top_k` may lower it).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal

Kind = Literal["image", "text"]
KINDS: tuple[Kind, ...] = ("image", "text")

# The request header the front door sets on /v2/models/<m>[/versions/<v>]/infer (and blanks on
# every other location, so a client cannot set it): the handler speaks v2 only when it says so.
PROTOCOL_HEADER = "X-Inference-Protocol"
PROTOCOL_VALUE = "v2"
# The binary tensor data extension: the length of the JSON header that starts the body, on the
# request (client -> server) and on the response (server -> client).
HEADER_LENGTH_HEADER = "Inference-Header-Content-Length"
JSON_CONTENT_TYPE = "application/json"
BINARY_CONTENT_TYPE = "application/octet-stream"

# The most instances (elements of the input tensor) one request may carry. A TorchServe batch of
# `batchSize` requests becomes one forward pass of up to batchSize x MAX_INSTANCES samples: 8 x 64
# = 512 digits or 32 x 64 = 2048 texts, a few MB of activations for our models, but a brought
# 224x224 image model holds ~0.6 MB per sample (NCHW float32) before its first layer, so the bound
# is what keeps one batch of large requests from holding gigabytes. The bench sends up to 32.
MAX_INSTANCES = 64

LABEL = "label"
PROBABILITY = "probability"
OUTPUT_NAMES = (LABEL, PROBABILITY)
BYTES = "BYTES"
FP32 = "FP32"
OUTPUT_DATATYPES = {LABEL: BYTES, PROBABILITY: FP32}

# The handler files the specs name as `model.handler`, by kind (an archive's manifest names them too).
HANDLER_FILES = {"image_classifier": "image", "text_classifier": "text", "stream_classifier": "text"}


@dataclass(frozen=True)
class Tensor:
    """One tensor of the contract; -1 is a dimension of any size (the instances)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def metadata(self) -> dict[str, Any]:
        """The tensor as the model metadata response lists it (KServe v2: name, datatype, shape)."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def input_tensor(kind: Kind) -> Tensor:
    """The one input of a model of this kind: `image` or `text`, BYTES, [-1] (also taken as [N, 1])."""
    if kind not in KINDS:
        raise ValueError(f"task kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return Tensor(kind, BYTES, (-1,))


def output_tensors(top_k: int) -> list[Tensor]:
    """`label` and `probability`, [-1, top_k]: the k best labels of each instance and their probabilities."""
    if int(top_k) < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k!r}")
    return [Tensor(name, OUTPUT_DATATYPES[name], (-1, int(top_k))) for name in OUTPUT_NAMES]


def tensors(kind: Kind, top_k: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(inputs, outputs) of the model metadata response, for a model of `kind` answering `top_k` labels."""
    return [input_tensor(kind).metadata()], [t.metadata() for t in output_tensors(top_k)]


def task_kind(handler: Mapping[str, Any] | None, handler_file: str | None = None) -> Kind:
    """'image' or 'text': what a model takes, from its handler settings (the `handler:` section of
    a spec or of the archive's model-config.yaml: the `image:` or `text:` section it writes), else
    from its handler file (`model.handler` of a spec, `model.handler` of an archive's manifest:
    image_classifier.py / text_classifier.py)."""
    written = [kind for kind in KINDS if kind in (handler or {})]
    if len(written) == 1:
        return written[0]
    stem = PurePath(handler_file).stem if handler_file else ""
    if stem in HANDLER_FILES:
        return HANDLER_FILES[stem]  # type: ignore[return-value]
    raise ValueError(f"cannot tell the task kind: the handler settings write {written or 'neither image nor text'} "
                     f"and the handler file {handler_file!r} is not one of "
                     f"{', '.join(f + '.py' for f in HANDLER_FILES)}")


def handler_top_k(handler: Mapping[str, Any] | None) -> int:
    """The k a model answers with: its handler settings' `top_k`, else HandlerSettings' default."""
    from handlers.settings import HandlerSettings  # the one place the default is written

    value = (handler or {}).get("top_k")
    return int(value) if value is not None else HandlerSettings.top_k


def model_tensors(model_config: Mapping[str, Any], handler_file: str | None = None
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`tensors` for an archive: its model-config.yaml (stackctl.catalog.archive_files.read_config)
    and its manifest's `model.handler`."""
    handler = model_config.get("handler") or {}
    return tensors(task_kind(handler, handler_file), handler_top_k(handler))
