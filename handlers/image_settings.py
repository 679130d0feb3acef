"""The `handler.image` section of a model spec: limits, colour mode and preprocessing family."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from handlers.sections import read


@dataclass(frozen=True)
class ImageSettings:
    """The `handler.image` section of a model spec, with defaults.

    Two preprocessing families share the decoder:
    * `ink` (digits): any polarity, any size; the digit is found, centred and pooled to `size`,
      the way scikit-learn's digits were made (ink fraction per block, 0..16).
    * torchvision style: resize shorter side, centre crop, mean/std (resnet18, mobilenet_v3, ...).
    """

    max_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 25_000_000
    min_side: int = 1
    color_mode: str = "RGB"                      # "L" or "RGB": what the model takes
    size: tuple[int, int] | None = None          # final (height, width) for the ink family
    resize: int | None = None                    # torchvision family: shorter side
    center_crop: int | None = None
    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    ink: dict[str, Any] = field(default_factory=dict)
    # Decode big JPEGs at reduced size (libjpeg DCT scaling): far cheaper, same answer.
    draft_side: int = 512
    # When the model runs on a GPU, decode RGB and greyscale JPEGs there (nvJPEG) and resize them
    # there (torchvision family only). Off by default: on an H100 it tripled mobilenet's
    # in-process limit, but served throughput at batchSize 4 stayed where the CPU decode had it,
    # most likely because the two workers take turns on the one GPU. Measure before turning on.
    gpu_decode: bool = False
    given: tuple[str, ...] = field(default=(), repr=False)  # the keys the file wrote (handlers.sections)

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> ImageSettings:
        cfg = dict(cfg or {})
        tuples = {key: tuple(cfg[key]) for key in ("size", "mean", "std") if cfg.get(key) is not None}
        return read(cls, cfg, "image settings", **tuples)

    @property
    def channels(self) -> int:
        return 1 if self.color_mode == "L" else 3
