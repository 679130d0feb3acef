"""`make soak`: constant load at about half of measured capacity for a long while; fails on any
error or when the model workers' memory grows.

    python -m stackctl.soak --duration 30m                     # against `make serve` (run/)
    python -m stackctl.soak --duration 60s --rate 3 --pid 1234 --host http://127.0.0.1:18080

Rate per model: `--rate` if given; else `--fraction` (0.5) of that model's `max_rps_within_slo` in
the newest reports/loadtest/capacity-*/capacity.csv (`make capacity`), divided by the number of
models (each capacity was measured with that model alone, and here they share the host); else
FALLBACK_RPS. Requests are the load test's valid payloads (loadtest/payloads.py), paced open
loop with at most `--max-in-flight` outstanding, to loopback only.

Targets (exit 1 when missed): 0 errors (any answer but 200, or no answer), and the summed RSS of
the model workers at the end within +10% of the RSS at the start. "Start" is after a warm-up
(10% of the run, 5..60 s), because the first batches allocate buffers that are then reused. A
worker that is replaced during the run (its pid changes) is an error too. The summary goes to
stdout and reports/soak/<timestamp>/summary.{json,md}.
"""
from __future__ import annotations

import argparse
import csv
import ipaddress
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit

import psutil
import requests

from stackctl import paths

REPORTS = paths.ROOT / "reports"
FALLBACK_RPS = 2.0        # per model: sustained by a 2-core laptop with both models on CPU
MAX_RSS_GROWTH = 0.10
REQUEST_TIMEOUT = 30.0    # = responseTimeout in config/models/*.yaml


# --- load --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    model: str
    url: str
    bodies: Sequence[tuple[bytes, str]]   # (body, content type), used round-robin
    rate: float                           # requests/s
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    model: str
    started: float      # time.monotonic()
    finished: float
    status: int         # 0: no answer (connection error, timeout)
    detail: str = ""


class Load:
    """Open-loop paced requests to one or more targets, each at its own constant rate, from a
    bounded thread pool. Every request's outcome is kept; `in_flight(model)` counts the ones sent
    and not yet answered (used to judge how many failures a fault may cause)."""

    def __init__(self, targets: Sequence[Target], max_in_flight: int = 16, timeout: float = REQUEST_TIMEOUT):
        self.targets = list(targets)
        self.timeout = timeout
        self.outcomes: list[Outcome] = []
        self._pending: dict[str, int] = {t.model: 0 for t in targets}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="load")
        self._local = threading.local()
        self._schedulers = [threading.Thread(target=self._pace, args=(t,), daemon=True) for t in targets]
        self.late = 0  # requests that left later than scheduled because every slot was busy

    def start(self) -> "Load":
        for thread in self._schedulers:
            thread.start()
        return self

    def stop(self) -> list[Outcome]:
        """Stop sending, wait for the requests in flight, return every outcome."""
        self._stop.set()
        for thread in self._schedulers:
            thread.join()
        self._pool.shutdown(wait=True)
        return self.outcomes

    def __enter__(self) -> "Load":
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def in_flight(self, model: str | None = None) -> int:
        with self._lock:
            return sum(self._pending.values()) if model is None else self._pending[model]

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def _pace(self, target: Target) -> None:
        interval = 1.0 / target.rate
        next_at = time.monotonic()
        sent = 0
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            if not self._slots.acquire(timeout=1.0):
                continue  # every slot busy: retry (late), unless stopping
            behind = time.monotonic() - next_at
            if behind > interval:
                self.late += 1
            if behind > 1.0:
                next_at = time.monotonic()  # no catch-up burst after a stall: the backlog is dropped
            with self._lock:
                self._pending[target.model] += 1
            body, content_type = target.bodies[sent % len(target.bodies)]
            self._pool.submit(self._send, target, body, content_type)
            sent += 1
            next_at += interval

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _send(self, target: Target, body: bytes, content_type: str) -> None:
        started = time.monotonic()
        status, detail = 0, ""
        try:
            response = self._session().post(target.url, data=body, timeout=self.timeout,
                                            headers={"Content-Type": content_type, **target.headers})
            status = response.status_code
            if status != 200:
                detail = response.text[:200]
        except requests.RequestException as exc:
            detail = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            outcome = Outcome(target.model, started, time.monotonic(), status, detail)
            with self._lock:
                self._pending[target.model] -= 1
                self.outcomes.append(outcome)
            self._slots.release()


# --- workers and their memory ---------------------------------------------------------------------
def worker_processes(server_pid: int) -> dict[int, psutil.Process]:
    """TorchServe's Python model workers under the server process `server_pid`, by pid."""
    root = psutil.Process(server_pid)
    found = {}
    for proc in root.children(recursive=True):
        try:
            if any("model_service_worker" in part for part in proc.cmdline()):
                found[proc.pid] = proc
        except psutil.Error:
            continue
    return found


def rss_of(processes: dict[int, psutil.Process]) -> dict[int, int]:
    sizes = {}
    for pid, proc in processes.items():
        try:
            sizes[pid] = proc.memory_info().rss
        except psutil.Error:
            sizes[pid] = 0
    return sizes


# --- rates -----------------------------------------------------------------------------------------
def latest_capacity(reports: Path = REPORTS / "loadtest") -> tuple[Path, dict[str, float]] | None:
    """The newest `make capacity` result: (csv path, {model: max req/s within SLO})."""
    for folder in sorted(reports.glob("capacity-*"), reverse=True):
        table = folder / "capacity.csv"
        if not table.is_file():
            continue
        with table.open(newline="", encoding="utf-8") as handle:
            rates = {row["model"]: float(row["max_rps_within_slo"]) for row in csv.DictReader(handle)}
        if any(rate > 0 for rate in rates.values()):
            return table, rates
    return None


def plan_rates(models: Sequence[str], rate: float | None, fraction: float,
               capacity: tuple[Path, dict[str, float]] | None) -> tuple[dict[str, float], str]:
    """{model: req/s} and where the numbers came from."""
    if rate is not None:
        return {m: rate for m in models}, f"--rate {rate:g} per model"
    if capacity is not None:
        table, measured = capacity
        share = fraction / len(models)
        rates = {m: round(max(0.5, measured[m] * share), 2) if measured.get(m) else FALLBACK_RPS for m in models}
        return rates, f"{fraction:g} x capacity / {len(models)} models, from {table}"
    return {m: FALLBACK_RPS for m in models}, f"no capacity report (run `make capacity`): fallback {FALLBACK_RPS:g} req/s per model"


def parse_duration(text: str) -> float:
    """'90', '90s', '5m', '1h' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"soak traffic goes to loopback only; {url} is not (use a port-forward)")


# --- the run ---------------------------------------------------------------------------------------
@dataclass
class Summary:
    duration_s: float
    rates: dict[str, float]
    rate_source: str
    requests: int
    errors: int
    errors_by_model: dict[str, int]
    error_examples: list[str]
    achieved_rps: dict[str, float]
    p95_ms: dict[str, float]
    late_sends: int
    rss_start_mb: float
    rss_end_mb: float
    rss_growth: float
    workers_replaced: bool
    failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def run_soak(host: str, server_pid: int, rates: dict[str, float], duration: float, rate_source: str = "",
             max_in_flight: int = 16, max_rss_growth: float = MAX_RSS_GROWTH, headers: dict[str, str] | None = None,
             log=print) -> Summary:
    from loadtest import payloads  # builds the bodies (a few seconds), only when a soak runs
    from stackctl.specs import get_spec

    require_loopback(host)
    targets = []
    for model, rate in rates.items():
        good = payloads.payloads_for(get_spec(model)).good
        targets.append(Target(model, f"{host.rstrip('/')}/predictions/{model}",
                              [(p.body, p.content_type) for p in good], rate, dict(headers or {})))
    workers = worker_processes(server_pid)
    if not workers:
        raise SystemExit(f"no model workers under pid {server_pid}: is TorchServe running?")
    warmup = min(60.0, max(5.0, 0.1 * duration))
    log(f"soak: {', '.join(f'{m} {r:g} req/s' for m, r in rates.items())} ({rate_source}) for {duration:g} s "
        f"(warm-up {warmup:g} s); {len(workers)} workers")
    load = Load(targets, max_in_flight=max_in_flight).start()
    started = time.monotonic()
    try:
        time.sleep(warmup)
        rss_start = rss_of(workers)
        next_report = time.monotonic() + 60
        while time.monotonic() - started < duration:
            time.sleep(min(1.0, max(0.0, duration - (time.monotonic() - started))))
            if time.monotonic() >= next_report:
                done = load.snapshot()
                log(f"  {time.monotonic() - started:6.0f} s: {len(done)} requests, "
                    f"{sum(o.status != 200 for o in done)} errors, workers RSS "
                    f"{sum(rss_of(workers).values()) / 2**20:.0f} MiB")
                next_report += 60
        rss_end = rss_of(workers)
    finally:
        outcomes = load.stop()
    elapsed = time.monotonic() - started
    replaced = set(worker_processes(server_pid)) != set(workers)
    errors = [o for o in outcomes if o.status != 200]
    start_total, end_total = sum(rss_start.values()), sum(rss_end.values())
    growth = (end_total - start_total) / start_total if start_total else 0.0
    failures = []
    if errors:
        failures.append(f"{len(errors)} errors (target 0)")
    if growth >= max_rss_growth:
        failures.append(f"worker RSS grew {growth:.1%} (target < {max_rss_growth:.0%})")
    if replaced:
        failures.append("a model worker was replaced during the soak (it died)")
    if not outcomes:
        failures.append("no requests were sent")
    return Summary(
        duration_s=round(elapsed, 1), rates=rates, rate_source=rate_source, requests=len(outcomes),
        errors=len(errors), errors_by_model={m: sum(o.model == m for o in errors) for m in rates},
        error_examples=[f"{o.model} {o.status} {o.detail}" for o in errors[:5]],
        achieved_rps={m: round(sum(o.model == m for o in outcomes) / elapsed, 2) for m in rates},
        p95_ms={m: round(1000 * _p95([o.finished - o.started for o in outcomes if o.model == m]), 1) for m in rates},
        late_sends=load.late, rss_start_mb=round(start_total / 2**20, 1), rss_end_mb=round(end_total / 2**20, 1),
        rss_growth=round(growth, 4), workers_replaced=replaced, failures=failures)


def write_report(summary: Summary, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps({**asdict(summary), "ok": summary.ok}, indent=1) + "\n")
    rows = [("duration", f"{summary.duration_s:g} s"), ("rates", ", ".join(f"{m} {r:g}/s" for m, r in summary.rates.items())),
            ("rate source", summary.rate_source), ("requests", str(summary.requests)),
            ("errors (target 0)", str(summary.errors)),
            ("achieved req/s", ", ".join(f"{m} {r:g}" for m, r in summary.achieved_rps.items())),
            ("p95 ms", ", ".join(f"{m} {v:g}" for m, v in summary.p95_ms.items())),
            ("worker RSS start -> end", f"{summary.rss_start_mb:g} -> {summary.rss_end_mb:g} MiB "
                                       f"({summary.rss_growth:+.1%}, target < +{MAX_RSS_GROWTH:.0%})"),
            ("verdict", "PASS" if summary.ok else "FAIL: " + "; ".join(summary.failures))]
    (folder / "summary.md").write_text("| | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows))
    return folder


def main(argv: list[str] | None = None) -> int:
    from stackctl.native import NativeStack
    from stackctl.specs import load_specs

    parser = argparse.ArgumentParser(prog="python -m stackctl.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", default="30m", help="e.g. 30m, 90s, 2h (default 30m)")
    parser.add_argument("--host", default=None, help="inference URL (default: the `make serve` stack)")
    parser.add_argument("--pid", type=int, default=None, help="TorchServe's pid (default: from run/torchserve.pid)")
    parser.add_argument("--rate", type=float, default=None, help="req/s per model (default: from capacity)")
    parser.add_argument("--fraction", type=float, default=0.5, help="share of measured capacity (default 0.5)")
    parser.add_argument("--models", nargs="*", default=None, help="default: every spec")
    parser.add_argument("--max-in-flight", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="default reports/soak/<timestamp>")
    args = parser.parse_args(argv)

    stack = NativeStack.from_run_dir(paths.RUN)
    host = args.host or stack.inference_url
    pid = args.pid or stack.pid("torchserve")
    if pid is None or not psutil.pid_exists(pid):
        print("TorchServe is not running: start it with `make serve` (or pass --pid and --host)", file=sys.stderr)
        return 2
    from stackctl.token_auth import auth_headers

    models = args.models or [s.name for s in load_specs()]
    rates, source = plan_rates(models, args.rate, args.fraction, latest_capacity())
    summary = run_soak(host, pid, rates, parse_duration(args.duration), source, args.max_in_flight,
                       headers=auth_headers("inference"))
    folder = write_report(summary, args.out or REPORTS / "soak" / time.strftime("%Y%m%d-%H%M%S"))
    print((folder / "summary.md").read_text())
    print(f"report: {folder}")
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
