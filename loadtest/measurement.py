"""One step of load, measured: the record that the load driver (driver.py), `make capacity`
(capacity.py), the SLO gate (slo.py) and `make bench` (bench/loadgen.py) all share.

A `Measurement` is what one model's requests did while one load was held: how the load was
offered (closed or open loop, users, offered rate), then Locust's counts and its own response-time
percentiles (never recomputed from buckets). It is computed from Locust's statistics in one place,
`from_locust` (live) or `from_stats_row` (a finished run's CSV). Each tool adds its own readings
next to it (the bench its CPU use, capacity its batch size and verdict) and writes the JSON or CSV
shape it always wrote; `FIELDS` names the record's part of those shapes.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

# The record's fields in the order every stored step has them (bench/results/*.json, steps.csv).
LOAD_FIELDS = ("mode", "users", "offered_rps")
WINDOW_FIELDS = ("seconds", "requests", "failures", "status_5xx", "rps", "p50_ms", "p95_ms", "p99_ms")
FIELDS = ("model", *LOAD_FIELDS, *WINDOW_FIELDS, "first_failure")


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """What one model's requests did during one step of load (or one whole Locust run)."""

    model: str                      # the model's name (Locust's request name)
    mode: str = "run"               # "closed" (N users, no think time), "open" (paced), "run" (a locustfile run)
    users: int = 0                  # users that sent this model's requests (0: not known, a locustfile run)
    offered_rps: float | None = None  # open loop only: the rate the paced users together started
    seconds: float = 0.0            # the window's length (0: a whole run, timed by Locust itself)
    requests: int
    failures: int
    status_5xx: int = 0
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    first_failure: str | None = None  # "<count>x <error>" of the first error Locust grouped

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], model_key: str = "model", rps_key: str = "rps") -> Measurement:
        """The record's part of a stored step or verdict (a bench step has the target's label for
        `model`, steps.csv `achieved_rps` for `rps`); fields an older file lacks take their defaults."""
        known = {k: data[k] for k in FIELDS if k in data and k not in ("model", "rps")}
        return cls(model=data[model_key], rps=data[rps_key], **known)


def nothing(model: str) -> Measurement:
    """No request of `model` was answered (or none was sent)."""
    return Measurement(model=model, requests=0, failures=0, rps=0.0, p50_ms=None, p95_ms=None, p99_ms=None)


class StatsEntry(Protocol):
    """The part of Locust's `StatsEntry` (one request name's statistics) read here."""

    @property
    def num_requests(self) -> int: ...

    @property
    def num_failures(self) -> int: ...

    @property
    def total_rps(self) -> float: ...

    def get_response_time_percentile(self, percent: float) -> float: ...


def from_locust(model: str, entry: StatsEntry, *, seconds: float | None = None, mode: str = "run", users: int = 0,
                offered_rps: float | None = None, status_5xx: int = 0, first_failure: str | None = None) -> Measurement:
    """The one place a Measurement is computed from Locust's samples. With `seconds` (a timed
    window: the driver) the rate is requests over the window; without (a whole run: the SLO gate)
    it is Locust's own rate over the run."""
    n = entry.num_requests
    pct = entry.get_response_time_percentile
    rps = round(n / seconds, 2) if seconds else float(entry.total_rps)
    return Measurement(model=model, mode=mode, users=users, offered_rps=offered_rps,
                       seconds=round(seconds, 2) if seconds else 0.0, requests=n, failures=entry.num_failures,
                       status_5xx=status_5xx, rps=rps, p50_ms=pct(0.5) if n else None,
                       p95_ms=pct(0.95) if n else None, p99_ms=pct(0.99) if n else None, first_failure=first_failure)


def number_or_none(value: str | None) -> float | None:
    """A number from Locust's CSV files, which write "N/A" or nothing where there is none."""
    try:
        return float(value) if value not in (None, "", "N/A") else None
    except ValueError:
        return None


def from_stats_row(model: str, row: Mapping[str, str]) -> Measurement:
    """A Measurement from one row of Locust's final `<prefix>_stats.csv` (a finished run)."""
    return Measurement(model=model, requests=int(row["Request Count"]), failures=int(row["Failure Count"]),
                       rps=float(row["Requests/s"]), p50_ms=number_or_none(row["50%"]), p95_ms=number_or_none(row["95%"]),
                       p99_ms=number_or_none(row["99%"]))
