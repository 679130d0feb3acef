"""Rounds of one `make bench` -> the median of every ratio and target, with each round's value.

On a shared 2-core VM one round of a setting moves a ratio by 20-40% (bench/NOTES.md), enough to
carry a value across its target in either direction. `make bench` therefore runs the whole plan
several times, interleaved (digits, langid, mobilenet, cold start; again ...), so a noisy minute
hits one round of each rather than every step of one workload, and judges each target on the
median round. Plain functions over the results dict, like report.py.
"""
from __future__ import annotations

import statistics
from typing import Any

# Per-workload facts that do not change between rounds (copied from the first round).
DESCRIPTION_KEYS = ("kind", "note", "spec", "serving", "torch_threads_per_worker", "payloads", "slo")


def _numbers(values: list[Any]) -> list[float]:
    return [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def median(values: list[Any]) -> float | None:
    """The median of the numeric values (None and booleans skipped); None when there are none."""
    numbers = _numbers(values)
    return round(statistics.median(numbers), 3) if numbers else None


def summarize_workload(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One workload over its rounds: its description, the median of each ratio, each round's value."""
    summary = {key: rounds[0][key] for key in DESCRIPTION_KEYS if key in rounds[0]}
    ratios: dict[str, Any] = {}
    values: dict[str, list[Any]] = {}
    for key in rounds[0]["ratios"]:
        per_round = [r["ratios"].get(key) for r in rounds]
        values[key] = per_round
        if all(isinstance(v, bool) for v in per_round):
            ratios[key] = any(per_round)  # a flag (client-bound): raised if any round raised it
        else:
            ratios[key] = median(per_round)
    summary["ratios"], summary["rounds"] = ratios, values
    return summary


def meets(value: float | None, op: str, threshold: Any) -> bool | None:
    """Whether `value` meets `op threshold` (">=", "<=", or "between" [low, high]); None when unmeasured."""
    if value is None:
        return None
    if op == "between":
        low, high = threshold
        return low <= value <= high
    return value >= threshold if op == ">=" else value <= threshold


def combine_targets(per_round: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each target judged on its median over the rounds; `why` from the round nearest that median.
    A round whose steps failed fails the target, whatever the median: its figures are not a measurement."""
    combined = []
    for first in per_round[0]:
        key = (first["target"], first["workload"])
        same = [next(t for t in targets if (t["target"], t["workload"]) == key) for targets in per_round]
        values = [t["value"] for t in same]
        value = median(values)
        failed = [t for t in same if t.get("failed")]
        met = False if failed else meets(value, first["op"], first["threshold"])
        measured = [t for t in same if t["value"] is not None]
        nearest = failed[0] if failed else (min(measured, key=lambda t: abs(t["value"] - value)) if measured
                                            else first)
        combined.append({**first, "value": value, "values": values, "met": met,
                         "failed": "; ".join(t["failed"] for t in failed),
                         "rounds_met": sum(bool(t["met"]) for t in same), "rounds": len(same),
                         "why": "" if met else nearest["why"],
                         "why_round": None if met else same.index(nearest) + 1})
    return combined


def combine_cold_starts(cold_starts: list[dict[str, Any]]) -> dict[str, Any]:
    values = [c["seconds"] for c in cold_starts]
    return {**cold_starts[0], "seconds": median(values), "values": values}
