"""After a fault, how long until the faulted model is whole again: every worker READY (the
management API), readiness back (stackctl.serve.readiness.check_ready, what `make serve` and the
probes wait on), and the first 200 (from the request records, after the run)."""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import requests

from loadtest.chaos.faults import Fault, workers
from loadtest.chaos.record import Record
from stackctl.serve.readiness import NotReady, check_ready


@dataclass
class Recovery:
    workers_ready_s: float | None = None   # None: not within the watch
    readiness_s: float | None = None
    first_200_s: float | None = None
    series_s: float | None = None          # Prometheus faults: every model's request-rate line back


def _all_ready(management_url: str, model: str, expected: int, gone: set[int]) -> bool:
    """Every worker READY, and none of them one the fault hit: right after a SIGKILL the API
    still lists the dead worker as READY until TorchServe notices."""
    states = workers(management_url, model)
    return len(states) >= expected and all(s == "READY" for s in states.values()) and not gone & set(states)


def is_ready(management_url: str) -> bool:
    try:
        check_ready(management_url)
        return True
    except NotReady:
        return False


def watch(management_url: str, fault: Fault, expected_workers: int, limit_s: float) -> Recovery:
    """Poll from the fault's end until every worker of its model is READY (none of them one the
    fault hit), or `limit_s` passed (what the spec's start-up allows). Readiness counts from its
    last return: right after a kill it still says ready until TorchServe notices the dead worker."""
    recovery = Recovery()
    gone = {int(hit.split()[0]) for hit in fault.hits} if fault.model else set()
    while time.time() - fault.ended < limit_s:
        now = time.time() - fault.ended
        if not is_ready(management_url):
            recovery.readiness_s = None
        elif recovery.readiness_s is None:
            recovery.readiness_s = round(now, 2)
        if not fault.model or _all_ready(management_url, fault.model, expected_workers, gone):
            recovery.workers_ready_s = round(now, 2)
            if recovery.readiness_s is not None:
                break
        time.sleep(0.2)
    return recovery


def first_200(records: list[Record], fault: Fault, model: str = "") -> float | None:
    """Seconds from the fault's end to the first right 200 of `model` (default: the fault's)
    answered after it."""
    model = model or fault.model
    answers = [r.ended - fault.ended for r in records
               if r.status == 200 and not r.wrong and (not model or r.model == model) and r.ended >= fault.ended]
    return round(max(0.0, min(answers)), 2) if answers else None


SERIES_QUERY = "sum by (model_name) (rate(ts_inference_requests_total[1m]))"


def _series(prometheus_url: str) -> set[str]:
    try:
        answer = requests.get(f"{prometheus_url}/api/v1/query", params={"query": SERIES_QUERY}, timeout=5).json()
        return {r["metric"].get("model_name", "") for r in answer["data"]["result"]}
    except (requests.RequestException, ValueError, KeyError):
        return set()


def series_back(prometheus_url: str, models: Iterable[str], since: float, limit_s: float) -> float | None:
    """Seconds from `since` until the dashboard's per-model request rate has a value for every
    model again (no line missing after a restart of Prometheus); None if not within `limit_s`."""
    wanted = set(models)
    while time.time() - since < limit_s:
        if wanted <= _series(prometheus_url):
            return round(time.time() - since, 2)
        time.sleep(0.5)
    return None
