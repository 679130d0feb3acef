"""How long a request to each model may wait for its answer before the front door answers 504.

TorchServe bounds a batch in a worker by the model's `responseTimeout` and answers it itself, but
a job it loses (docs/faults.md: a worker killed while its thread gathers a batch) has no timer at
all, and a job queued for workers that do not come back waits as long as the client does. So the
front door ends every wait at a bound derived from the model's serving settings:

    queue wait + maxBatchDelay + responseTimeout + MARGIN_S, rounded up to a whole second

where the queue wait allowed is one more `responseTimeout`: with the model's workers alive, a
request at the head of the queue waits at most for the batch ahead of it, which TorchServe ends
at `responseTimeout`. Waiting longer means waiting for workers that are not there, and an
answer (504, retry) is worth more than the wait. The bound is longer than anything TorchServe
itself answers within, so the front door only answers what TorchServe would never answer.

The settings are read from the archives TorchServe serves (their model-config.yaml is the spec's
`serving:` section, stackctl.catalog.specs.ModelSpec.model_config), so a store of test archives gets
bounds of its own; a missing key takes TorchServe's default.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from handlers.settings import ServingSettings
from stackctl.catalog import versions
from stackctl.catalog.archive_files import read_config

MARGIN_S = 5.0
# Names the front door may put in a location regex and a quoted message as they are.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class WaitBound:
    model: str
    response_timeout_s: float
    batch_delay_ms: float

    @property
    def queue_wait_s(self) -> float:
        return self.response_timeout_s

    @property
    def seconds(self) -> int:
        exact = self.queue_wait_s + self.batch_delay_ms / 1000 + self.response_timeout_s + MARGIN_S
        return math.ceil(exact)


def from_serving(model: str, serving: ServingSettings, default_response_timeout_s: float) -> WaitBound:
    """The bound of one model from its serving settings (a spec's `serving:` or an archive's
    model-config.yaml); without a responseTimeout of its own, the server's default_response_timeout."""
    timeout = serving.response_timeout if "responseTimeout" in serving.given else default_response_timeout_s
    return WaitBound(model, float(timeout), float(serving.max_batch_delay))


def merged(bounds: Iterable[WaitBound]) -> dict[str, WaitBound]:
    """One bound per model: the longest of its versions (they share /predictions/<model>)."""
    chosen: dict[str, WaitBound] = {}
    for bound in bounds:
        if bound.model not in chosen or bound.seconds > chosen[bound.model].seconds:
            chosen[bound.model] = bound
    return chosen


def from_store(store: Path, default_response_timeout_s: float) -> dict[str, WaitBound]:
    """{model: bound} for every archive in `store` (what TorchServe serves from it)."""
    return merged(from_serving(versions.model_name(archive), ServingSettings.from_config(read_config(archive)),
                                  default_response_timeout_s)
                  for archive in sorted(Path(store).glob("*.mar")))


def longest(bounds: Mapping[str, WaitBound], default_response_timeout_s: float) -> int:
    """The bound for any other request (a model not listed, /ping): the longest one, or what a
    model with every default would get."""
    fallback = from_serving("", ServingSettings(), default_response_timeout_s).seconds
    return max([fallback, *(b.seconds for b in bounds.values())])
