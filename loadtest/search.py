"""The capacity search as a pure function of "does this arrival rate pass?" (no server, no clock).

From an estimate (the closed-loop throughput at saturation), probe a little below it; step down
while probes fail and up while they pass until one rate passes and a higher one fails, then bisect
that bracket until it is narrower than `tolerance`. Each probe is one load step, and steps cost
time, so `more_time()` decides before every probe whether another one fits the budget. A search
the budget cuts short has found a lower bound ("≥ X"), never a maximum.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

FIRST = 0.9        # first probe at 0.9 x the estimate: saturation itself rarely holds an SLO
DOWN = 0.75        # no rate passed yet: the next probe is this much lower
UP = 1.25          # no rate failed yet: the next probe is this much higher (the estimate was low)


@dataclass
class Search:
    passed: float | None = None     # the highest rate that passed
    failed: float | None = None     # the lowest rate that failed (above `passed` once bracketed)
    complete: bool = False          # True: passed and failed within the tolerance
    stopped_because: str = ""
    probes: list[tuple[float, bool]] = field(default_factory=list)

    @property
    def capacity(self) -> float:
        return self.passed or 0.0

    @property
    def label(self) -> str:
        """"425.0" when bracketed; "≥ 128.6" when cut short; "< 5.0" when nothing passed."""
        if self.passed is None:
            return f"< {self.failed:.1f}" if self.failed is not None else "-"
        return f"{self.passed:.1f}" if self.complete else f"≥ {self.passed:.1f}"


def find_capacity(passes: Callable[[float], bool], estimate: float, more_time: Callable[[], bool], *,
                  tolerance: float = 0.05, min_rate: float = 0.5, max_rate: float = float("inf")) -> Search:
    """Highest rate in [min_rate, max_rate] for which `passes(rate)` holds, to within `tolerance`."""
    search = Search()
    rate = round(min(max_rate, max(min_rate, FIRST * estimate)), 1)
    while True:
        if not more_time():
            search.stopped_because = "time budget used"
            return search
        ok = passes(rate)
        search.probes.append((rate, ok))
        if ok:
            search.passed = max(rate, search.passed or 0.0)
        else:
            search.failed = rate if search.failed is None else min(rate, search.failed)
        if search.passed is not None and search.failed is not None:
            if search.failed <= search.passed * (1 + tolerance):
                search.complete = True
                search.stopped_because = f"bracketed within {tolerance:.0%}"
                return search
            rate = round((search.passed + search.failed) / 2, 1)
        elif search.passed is None:
            if rate <= min_rate:
                search.stopped_because = f"fails even at {min_rate:g} req/s"
                return search
            rate = round(max(min_rate, rate * DOWN), 1)
        else:
            if rate >= max_rate:
                search.stopped_because = f"passes at the maximum {max_rate:g} req/s"
                return search
            rate = round(min(max_rate, rate * UP), 1)
