"""Serving settings: which combinations `make tune` may try, and writing a winner into its spec.

No Locust here (tune.py imports Locust, which monkey-patches sockets): unit tests import this.
"""
from __future__ import annotations

from typing import Any

from handlers.runtime import usable_cores
from handlers.sections import override
from stackctl.catalog.spec_edit import write_sections
from stackctl.catalog.specs import ModelSpec


def parallelism_options(cores: int) -> list[tuple[int, int]]:
    """(workers, torch threads per worker) with workers x threads <= cores."""
    options = {(1, cores), (1, 1)}
    if cores >= 2:
        options.add((2, cores // 2))
    return sorted(options, key=lambda o: (-o[0] * o[1], o[0]))


def write_back(spec: ModelSpec, result: dict[str, Any]) -> None:
    """A tune result's winner into the spec's file (stackctl.catalog.spec_edit: values in place, comments stay)."""
    winner = result["winner"]
    serving = override(spec.serving, min_workers=winner["minWorkers"], max_workers=winner["maxWorkers"],
                       batch_size=winner["batchSize"], max_batch_delay=winner["maxBatchDelay"])
    auto = max(1, usable_cores() // serving.workers)
    # `auto` already gives cores / workers; write a number only when the winner differs from it.
    threads = "auto" if result["torch_threads"] == auto else result["torch_threads"]
    write_sections(spec, serving=serving, handler=override(spec.handler, torch_threads=threads))
