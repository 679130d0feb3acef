"""The typed `handler:` section of a model spec (and of the archive's model-config.yaml).

Every handler setting and its default is written here once; the handlers, stackctl (archives,
checks), the load test and the bench read these classes instead of the raw dict. The JSON Schema
(stackctl/model_spec.schema.json) says which keys a spec may carry; a unit test checks that the
schema and these fields agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from handlers.image_settings import ImageSettings

Config = dict[str, Any]
BACKENDS = ("torch", "onnxruntime")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TextSettings:
    """The `handler.text` section of a model spec."""

    max_chars: int = 256
    max_bytes: int = 65536

    @classmethod
    def from_config(cls, cfg: Config | None) -> TextSettings:
        return cls(**_known(cls, cfg, "text settings"))


@dataclass(frozen=True)
class HandlerSettings:
    """The `handler:` section: what every classifier handler reads, with its defaults.

    `name`, `architecture`, `arguments` and `workers_on_host` are not written in a spec's
    `handler:` section: stackctl adds them to the archive's copy from the spec's `model:` section
    and the set of specs served together.
    """

    top_k: int = 3
    torch_threads: int | str = "auto"       # an int, or "auto": usable cores / workers on the host
    channels_last: bool = False             # image models: NHWC convolutions
    fuse_conv_bn: bool = True               # fold BatchNorm into the convolutions at load
    warmup: bool = True                     # one forward pass per batch size before READY
    pad_batches: bool | str = "auto"        # "auto": pad to a power of two on CUDA only
    precision: str = "fp32"                 # fp32 | bf16 | fp16 (autocast, CUDA only)
    backend: str = "torch"                  # torch | onnxruntime (sequence models on CPU)
    image: ImageSettings = field(default_factory=ImageSettings)
    text: TextSettings = field(default_factory=TextSettings)
    # Added by stackctl to the archive's copy (not spec keys):
    name: str | None = None
    architecture: str | None = None
    arguments: Config = field(default_factory=dict)
    workers_on_host: int | None = None
    training: Config = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"handler.backend must be 'torch' or 'onnxruntime', got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"handler.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @classmethod
    def from_config(cls, cfg: Config | None) -> HandlerSettings:
        values = _known(cls, cfg, "handler settings")
        values["image"] = ImageSettings.from_config(values.get("image"))
        values["text"] = TextSettings.from_config(values.get("text"))
        values["arguments"] = dict(values.get("arguments") or {})
        return cls(**values)


def _known(cls: type, cfg: Config | None, what: str) -> Config:
    """`cfg` as keyword arguments of `cls`; an unknown key is an error, never silently dropped."""
    values = dict(cfg or {})
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what}: {sorted(unknown)}")
    return values
