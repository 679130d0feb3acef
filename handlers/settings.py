"""The typed sections of the archive's model-config.yaml (and of a model spec): TorchServe's
per-model keys (`serving:` in a spec, ServingSettings) and ours under `handler:` (HandlerSettings).

Every setting and its default is written here once; the handlers, stackctl (archives, checks),
the load test and the bench read these classes instead of the raw dict. They live in handlers/
because a worker reads them from its archive, which ships handlers/ and models/ alone. The JSON
Schema (stackctl/catalog/model_spec.schema.json) says which keys a spec may carry; a unit test checks
that the schema and these fields agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from handlers.image_settings import ImageSettings
from handlers.sections import read
from handlers.sequence_settings import SequenceSettings

Config = dict[str, Any]
BACKENDS = ("torch", "onnxruntime")
ADDED = {"spec": False}  # a field stackctl adds to the archive's copy; not a key of the spec
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TextSettings:
    """The `handler.text` section of a model spec."""

    max_chars: int = 256
    max_bytes: int = 65536
    given: tuple[str, ...] = field(default=(), repr=False)  # the keys the file wrote (handlers.sections)

    @classmethod
    def from_config(cls, cfg: Config | None) -> TextSettings:
        return read(cls, cfg, "text settings")


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
    # The most samples one forward pass runs: multi-instance (OIP) requests bring up to batchSize x
    # N samples to one batch, and past some size a bigger pass costs more per item on a CPU
    # (mobilenet: 2.6 ms/item at 8, 4.9 at 128). None: no limit (padded: the batch size).
    max_forward_batch: int | None = None
    precision: str = "fp32"                 # fp32 | bf16 | fp16 (autocast, CUDA only)
    backend: str = "torch"                  # torch | onnxruntime (sequence models on CPU)
    image: ImageSettings = field(default_factory=ImageSettings)
    text: TextSettings = field(default_factory=TextSettings)
    # Added by stackctl to the archive's copy (not spec keys):
    name: str | None = field(default=None, metadata=ADDED)
    architecture: str | None = field(default=None, metadata=ADDED)
    arguments: Config = field(default_factory=dict, metadata=ADDED)
    workers_on_host: int | None = field(default=None, metadata=ADDED)
    sequence: SequenceSettings | None = field(default=None, metadata=ADDED)  # the spec's `sequence:` section
    training: Config = field(default_factory=dict, metadata=ADDED)
    given: tuple[str, ...] = field(default=(), repr=False)  # the keys the file wrote (handlers.sections)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"handler.backend must be 'torch' or 'onnxruntime', got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"handler.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @classmethod
    def from_config(cls, cfg: Config | None) -> HandlerSettings:
        cfg = dict(cfg or {})
        return read(cls, cfg, "handler settings", image=ImageSettings.from_config(cfg.get("image")),
                    text=TextSettings.from_config(cfg.get("text")), arguments=dict(cfg.get("arguments") or {}),
                    **({"sequence": SequenceSettings.from_config(cfg["sequence"])} if "sequence" in cfg else {}))


@dataclass(frozen=True)
class ServingSettings:
    """TorchServe's per-model keys: a spec's `serving:` section, the top of model-config.yaml.

    The defaults are what this stack's TorchServe 0.12 does when a key is absent (the archive
    carries only the keys the spec writes): its own, or config/config.properties' default_* where
    that sets one (a unit test checks that they agree).
    """

    min_workers: int = field(default=1, metadata={"key": "minWorkers"})             # default_workers_per_model
    max_workers: int | None = field(default=None, metadata={"key": "maxWorkers"})  # None: minWorkers
    batch_size: int = field(default=1, metadata={"key": "batchSize"})
    max_batch_delay: int = field(default=100, metadata={"key": "maxBatchDelay"})     # ms
    response_timeout: int = field(default=30, metadata={"key": "responseTimeout"})   # s; default_response_timeout
    startup_timeout: int = field(default=120, metadata={"key": "startupTimeout"})    # s
    device_type: str | None = field(default=None, metadata={"key": "deviceType"})
    device_ids: tuple[int, ...] | None = field(default=None, metadata={"key": "deviceIds"})
    parallel_type: str | None = field(default=None, metadata={"key": "parallelType"})
    max_sequence_job_queue_size: int | None = field(default=None, metadata={"key": "maxSequenceJobQueueSize"})
    # Added from a spec's `sequence:` section (SequenceSettings.torchserve_keys), not spec keys:
    sequence_batching: bool = field(default=False, metadata={"key": "sequenceBatching", **ADDED})
    continuous_batching: bool = field(default=False, metadata={"key": "continuousBatching", **ADDED})
    sequence_max_idle_msec: int = field(default=0, metadata={"key": "sequenceMaxIdleMSec", **ADDED})
    max_num_sequence: int = field(default=1, metadata={"key": "maxNumSequence", **ADDED})
    given: tuple[str, ...] = field(default=(), repr=False)  # the keys the file wrote (handlers.sections)

    @property
    def workers(self) -> int:
        """The most workers TorchServe runs for the model: maxWorkers, else minWorkers."""
        return self.max_workers if self.max_workers is not None else self.min_workers

    @classmethod
    def from_config(cls, cfg: Config | None) -> ServingSettings:
        """From a spec's `serving:` section, or a whole model-config.yaml (its `handler:` aside)."""
        cfg = {k: v for k, v in (cfg or {}).items() if k != "handler"}
        ids = {"deviceIds": tuple(cfg["deviceIds"])} if cfg.get("deviceIds") is not None else {}
        return read(cls, cfg, "serving settings", **ids)
