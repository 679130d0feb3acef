"""What a pod run (stackctl.pod.podrun) yields: its Report, or a PodRunError saying which promise broke."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class PodRunError(RuntimeError):
    """The pod would not have come up, served or stopped as the manifest promises (message says how)."""


@dataclass
class Report:
    overlay: str
    image: str
    docker_run: list[str]
    notes: list[str] = field(default_factory=list)
    init_s: dict[str, float] = field(default_factory=dict)   # init container -> seconds it ran to completion
    started_s: float | None = None           # startup probe passed, seconds after `docker run`
    ready_s: float | None = None             # readiness passed
    live_s: float | None = None              # first liveness success
    probe_runs: dict[str, int] = field(default_factory=dict)
    sandbox: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, bool] = field(default_factory=dict)   # series the metrics port serves
    drain: dict[str, Any] = field(default_factory=dict)
