"""The SLO gate: compare what one load test observed per model with that model's spec.

Pure functions over plain numbers, so the same verdict comes out of a live Locust run (the
`events.quitting` hook in locustfile.py reads Locust's in-memory stats), a finished run's CSV
(report.py) and a capacity step (capacity.py). Percentiles always come from Locust's own
response-time statistics, never from histogram buckets.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from loadtest.measurement import Measurement, from_locust, nothing
from stackctl.catalog.specs import Slo

BAD_SUFFIX = " [bad]"
"""Stats name suffix of the deliberately bad requests (expected 4xx count as successes)."""

GATE_JSON_SUFFIX = "_slo.json"
"""<csv prefix>_slo.json: the gate's verdicts from Locust's final in-memory stats (report.py reads it)."""

SLO_KEYS = ("p95_ms", "p99_ms", "max_error_ratio")


# A verdict's observation in the gate's JSON: the measurement's fields the gate reads.
OBSERVED_JSON = ("model", "requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms")


@dataclass(frozen=True)
class Breach:
    model: str
    metric: str
    limit: float
    observed: float

    def describe(self) -> str:
        if self.metric == "requests":
            return f"{self.model}: no requests completed (the model was not exercised)"
        if self.metric == "max_error_ratio":
            return (f"{self.model}: error ratio {self.observed:.2%} > {self.limit:.2%} "
                    f"(+{(self.observed - self.limit) * 100:.2f} points)")
        over = self.observed - self.limit
        times = f", {self.observed / self.limit:.1f}x" if self.limit > 0 else ""
        return f"{self.model}: {self.metric} {self.observed:.0f} ms > {self.limit:g} ms (+{over:.0f} ms{times})"


def check(slo: Slo, seen: Measurement) -> list[Breach]:
    """Every way `seen` breaches `slo`; empty when the model is within its SLO."""
    if seen.requests == 0:
        return [Breach(seen.model, "requests", 1, 0)]
    breaches = []
    for metric in ("p95_ms", "p99_ms"):
        value = getattr(seen, metric)
        limit = getattr(slo, metric)
        if value is not None and value > limit:
            breaches.append(Breach(seen.model, metric, limit, value))
    if seen.error_ratio > slo.max_error_ratio:
        breaches.append(Breach(seen.model, "max_error_ratio", slo.max_error_ratio, seen.error_ratio))
    return breaches


def parse_overrides(text: str | None) -> dict[str, dict[str, float]]:
    """'digits.p95_ms=50,*.max_error_ratio=0' -> {'digits': {'p95_ms': 50.0}, '*': {...}}.

    Lets a run tighten or loosen SLOs (CI smoke runs, the impossible-SLO test) without editing
    the spec, which stays the single source of the real numbers.
    """
    out: dict[str, dict[str, float]] = {}
    for item in (text or "").replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            target, value = item.split("=", 1)
            model, key = target.strip().rsplit(".", 1)
            number = float(value)
        except ValueError:
            raise ValueError(f"SLO override {item!r} is not MODEL.KEY=NUMBER (e.g. digits.p95_ms=50)") from None
        if key not in SLO_KEYS:
            raise ValueError(f"SLO override {item!r}: key must be one of {', '.join(SLO_KEYS)}")
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"SLO override {item!r}: value must be a finite number >= 0")
        out.setdefault(model.strip(), {})[key] = number
    return out


def apply_overrides(slos: Mapping[str, Slo], overrides: Mapping[str, Mapping[str, float]]) -> dict[str, Slo]:
    unknown = set(overrides) - set(slos) - {"*"}
    if unknown:
        raise ValueError(f"SLO override for unknown model(s) {sorted(unknown)}; known: {sorted(slos)}")
    result = {}
    for name, slo in slos.items():
        changes = {**overrides.get("*", {}), **overrides.get(name, {})}
        result[name] = replace(slo, **changes) if changes else slo
    return result


def merge(model: str, good: Measurement | None, bad: Measurement | None) -> Measurement:
    """One model's verdict input: latency from good requests only (bad ones are answered fast and
    would flatter the percentiles), requests and failures from both."""
    if good is None and bad is None:
        return nothing(model)
    base = good or nothing(model)
    extra = bad or nothing(model)
    return replace(base, model=model, requests=base.requests + extra.requests,
                   failures=base.failures + extra.failures, rps=base.rps + extra.rps)


@dataclass(frozen=True)
class Verdict:
    observed: Measurement
    slo: Slo
    breaches: tuple[Breach, ...]

    @property
    def ok(self) -> bool:
        return not self.breaches


def judge(slos: Mapping[str, Slo], observed: Mapping[str, Measurement]) -> list[Verdict]:
    """A verdict for every model that has an SLO (a model with no requests is a breach)."""
    verdicts = []
    for name in sorted(slos):
        seen = observed.get(name) or nothing(name)
        verdicts.append(Verdict(seen, slos[name], tuple(check(slos[name], seen))))
    return verdicts


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def format_summary(verdicts: Sequence[Verdict]) -> str:
    """The per-model table printed after every run, then one line per breach."""
    header = ("model", "requests", "failures", "err%", "req/s", "p50", "p95", "p99",
              "SLO p95/p99/err", "verdict")
    rows = []
    for v in verdicts:
        o, s = v.observed, v.slo
        rows.append((o.model, str(o.requests), str(o.failures), f"{o.error_ratio:.2%}", f"{o.rps:.1f}",
                     _ms(o.p50_ms), _ms(o.p95_ms), _ms(o.p99_ms),
                     f"{s.p95_ms:g}/{s.p99_ms:g} ms/{s.max_error_ratio:.1%}",
                     "PASS" if v.ok else "BREACH"))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    breaches = [b for v in verdicts for b in v.breaches]
    if breaches:
        lines.append("")
        lines.extend(f"SLO BREACH {b.describe()}" for b in breaches)
    else:
        lines.append("")
        lines.append("SLO gate: every model within its SLO")
    return "\n".join(lines)


def items_per_s(seen: Measurement, instances: int) -> float:
    """Items answered per second by requests of `instances` items each: every answered request
    (not failed) held exactly that many, which the OIP answer check makes sure of."""
    return round(seen.rps * (1 - seen.error_ratio) * instances, 1)


def format_items(verdicts: Sequence[Verdict], instances: int) -> str:
    """One line per model: the items/s behind its req/s (OIP requests carry `instances` items)."""
    return "\n".join(f"{v.observed.model}: {items_per_s(v.observed, instances):g} items/s "
                     f"({instances} instances per request)" for v in verdicts)


def _observed_json(seen: Measurement) -> dict[str, Any]:
    return {key: seen.model if key == "model" else getattr(seen, key) for key in OBSERVED_JSON}


def to_json(verdicts: Sequence[Verdict]) -> list[dict]:
    return [{"observed": _observed_json(v.observed), "slo": asdict(v.slo),
             "breaches": [{**asdict(b), "text": b.describe()} for b in v.breaches], "ok": v.ok}
            for v in verdicts]


def from_json(rows: Sequence[Mapping]) -> list[Verdict]:
    return [Verdict(Measurement.from_json(r["observed"]), Slo(**r["slo"]),
                    tuple(Breach(**{k: v for k, v in b.items() if k != "text"}) for b in r["breaches"]))
            for r in rows]


def exit_code(verdicts: Iterable[Verdict]) -> int:
    return 0 if all(v.ok for v in verdicts) else 1


def observed_from_locust(entries: Mapping[tuple[str, str], Any], models: Iterable[str]) -> dict[str, Measurement]:
    """Per-model measurements of a whole run from Locust's StatsEntry objects (`environment.stats.entries`)."""
    by_name = {name: entry for (name, _method), entry in entries.items()}

    def one(name: str) -> Measurement | None:
        entry = by_name.get(name)
        if entry is None or not entry.num_requests:
            return None
        return from_locust(name, entry)

    return {m: merge(m, one(m), one(m + BAD_SUFFIX)) for m in models}
