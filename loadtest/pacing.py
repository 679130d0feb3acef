"""Open-loop pacing of one Locust user: starts on a fixed schedule, lateness counted from it.

Why open loop, and why latency counts from the scheduled start: the top of shapes.py.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable


class Pacer:
    """Open-loop schedule for one user: a start every 1/rate s, lateness measured against it.

    `next_wait()` is the user's wait_time. The next start is the previous *scheduled* start plus
    one period, never the previous answer's time plus one period, so slow answers do not stretch
    the schedule (no drift): a user that falls behind sends at once. `late_by()`, called when the
    request actually leaves, is how far it is behind its scheduled start, which the caller adds to
    the recorded latency. It is measured at the send, not when the wait was computed, because a
    busy load generator also wakes a sleeping user late, and that delay belongs to the request too.
    Changing the rate restarts the schedule from now (a new step owes nothing to the previous one).
    """

    def __init__(self, rate: float, phase: float, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.rate = rate
        self.next_start: float | None = None
        self.phase = phase  # 0..1: spreads users' first starts over one period

    def next_wait(self, rate: float) -> float:
        now = self.clock()
        if rate <= 0:
            raise ValueError("Pacer needs a positive rate")
        if self.next_start is None or rate != self.rate:
            self.rate = rate
            self.next_start = now + self.phase / rate
        else:
            self.next_start += 1.0 / rate
        return max(0.0, self.next_start - now)

    def late_by(self) -> float:
        """Seconds the request leaving now is behind its scheduled start (0 before any schedule)."""
        return 0.0 if self.next_start is None else max(0.0, self.clock() - self.next_start)


def users_for_rate(rps: float, user_rate: float, min_users: int = 1) -> int:
    """Paced users needed for `rps` requests/s when each user starts `user_rate` requests/s."""
    if user_rate <= 0:
        raise ValueError("an arrival-rate shape needs --user-rate > 0 (requests/s per user)")
    return max(min_users, math.ceil(rps / user_rate - 1e-9))


def per_user_rate(p99_ms: float) -> float:
    """Requests/s per paced user: one start every 2 x the p99 SLO, so a user whose answers stay
    within the SLO never falls behind its schedule (bounded to 0.5..10/s)."""
    return min(10.0, max(0.5, 1000.0 / (2 * p99_ms)))
