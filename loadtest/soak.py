"""`make soak`: constant open-loop load at about half of measured capacity for a long while; fails
on any error or when the model workers' memory grows.

    python -m loadtest.soak --duration 30m                     # against `make serve` (run/)
    python -m loadtest.soak --duration 60s --rate 3 --pid 1234 --host http://127.0.0.1:18080

Rate per model: `--rate` if given; else `--fraction` (0.5) of that model's capacity in the newest
reports/loadtest/capacity-*/capacity.csv, divided by the number of models (each capacity was
measured with that model alone, and here they share the host). Without such a report the soak
first measures it (`make capacity`'s search, which also writes the report). The load is the load
driver's (driver.py): the load test's valid payloads, paced open loop, to loopback only.

Targets (exit 1 when missed): 0 errors (any answer but a valid 200, or no answer), and the summed
RSS of the model workers at the end within +10% of the RSS at the start. "Start" is after a warm-up
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
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from stackctl import paths

REPORTS = paths.ROOT / "reports"
MAX_RSS_GROWTH = 0.10
MIN_RPS = 0.5             # per model: a model whose capacity share is below this still gets some load


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
    """The newest `make capacity` result per model: (the newest csv's path, {model: capacity req/s
    within SLO}). A run of some models only (`--models langstream`) does not hide the others: each
    model's figure comes from the newest report that measured it (a 0 there stands, never an
    older, better one)."""
    newest: Path | None = None
    rates: dict[str, float] = {}
    for folder in sorted(reports.glob("capacity-*"), reverse=True):
        table = folder / "capacity.csv"
        if not table.is_file():
            continue
        with table.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or "capacity_rps" not in rows[0]:
            continue  # written before the bisecting search: its numbers were budget-bound lower bounds
        found = {row["model"]: float(row["capacity_rps"]) for row in rows}
        if not any(rate > 0 for rate in found.values()):
            continue
        newest = newest or table
        rates.update({model: rate for model, rate in found.items() if model not in rates})
    return (newest, rates) if newest is not None else None


def plan_rates(models: Sequence[str], fraction: float, capacity: tuple[Path, dict[str, float]]) -> tuple[dict[str, float], str]:
    """{model: req/s}, `fraction` of each model's capacity shared by the models, and the source."""
    table, measured = capacity
    missing = [m for m in models if not measured.get(m)]
    if missing:
        raise ValueError(f"{table} has no capacity for {', '.join(missing)}: run `make capacity` (or pass --rate)")
    share = fraction / len(models)
    return ({m: round(max(MIN_RPS, measured[m] * share), 2) for m in models},
            f"{fraction:g} x capacity / {len(models)} models, from {table}")


def measure_capacity(host: str, metrics_url: str | None, models: Sequence[str], plan=None,
                     reports: Path | None = None, log=print) -> tuple[Path, dict[str, float]]:
    """`make capacity`'s search for `models` (its default plan), written where the next soak finds it."""
    from loadtest import capacity
    from loadtest.capacity_report import write_outputs
    from stackctl.catalog.specs import get_spec

    specs = [get_spec(m) for m in models]
    results = [capacity.measure_model(spec, spec.slo, host, metrics_url, plan or capacity.Plan(), log) for spec in specs]
    folder = (reports or capacity.REPORTS) / f"capacity-{time.strftime('%Y%m%d-%H%M%S')}"
    log(write_outputs(folder, results, {s.name: s.slo for s in specs}))
    return folder / "capacity.csv", {r.model: r.search.capacity for r in results}


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
    p95_ms: dict[str, float | None]
    rss_start_mb: float
    rss_end_mb: float
    rss_growth: float
    workers_replaced: bool
    failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures


def run_soak(host: str, server_pid: int, rates: dict[str, float], duration: float, rate_source: str = "",
             max_rss_growth: float = MAX_RSS_GROWTH, log=print) -> Summary:
    import gevent

    from loadtest import users
    from loadtest.driver import Driver
    from stackctl.catalog.specs import get_spec

    require_loopback(host)
    workers = worker_processes(server_pid)
    if not workers:
        raise SystemExit(f"no model workers under pid {server_pid}: is TorchServe running?")
    warmup = min(60.0, max(5.0, 0.1 * duration))
    classes = [users.make_user_class(get_spec(model)) for model in rates]
    log(f"soak: {', '.join(f'{m} {r:g} req/s' for m, r in rates.items())} ({rate_source}) for {duration:g} s "
        f"(warm-up {warmup:g} s); {len(workers)} workers")
    with Driver(classes, host) as driver:
        driver.open(rates)
        driver.reset()  # every request counts, the warm-up's too: an error is an error
        gevent.sleep(warmup)
        rss_start = rss_of(workers)
        next_report = time.monotonic() + 60
        while (left := duration - (time.monotonic() - driver.started)) > 0:
            gevent.sleep(min(1.0, left))
            if time.monotonic() >= next_report:
                now = driver.snapshot().values()
                log(f"  {time.monotonic() - driver.started:6.0f} s: {sum(w.requests for w in now)} requests, "
                    f"{sum(w.failures for w in now)} errors, workers RSS {sum(rss_of(workers).values()) / 2**20:.0f} MiB")
                next_report += 60
        rss_end = rss_of(workers)
        windows = driver.snapshot()
    elapsed = max(w.seconds for w in windows.values())
    replaced = set(worker_processes(server_pid)) != set(workers)
    requests = sum(w.requests for w in windows.values())
    errors = sum(w.failures for w in windows.values())
    start_total, end_total = sum(rss_start.values()), sum(rss_end.values())
    growth = (end_total - start_total) / start_total if start_total else 0.0
    failures = []
    if errors:
        failures.append(f"{errors} errors (target 0)")
    if growth >= max_rss_growth:
        failures.append(f"worker RSS grew {growth:.1%} (target < {max_rss_growth:.0%})")
    if replaced:
        failures.append("a model worker was replaced during the soak (it died)")
    if not requests:
        failures.append("no requests were sent")
    return Summary(
        duration_s=round(elapsed, 1), rates=rates, rate_source=rate_source, requests=requests, errors=errors,
        errors_by_model={m: w.failures for m, w in windows.items()},
        error_examples=[f"{m}: {w.first_failure}" for m, w in windows.items() if w.first_failure],
        achieved_rps={m: w.rps for m, w in windows.items()}, p95_ms={m: w.p95_ms for m, w in windows.items()},
        rss_start_mb=round(start_total / 2**20, 1), rss_end_mb=round(end_total / 2**20, 1),
        rss_growth=round(growth, 4), workers_replaced=replaced, failures=failures)


def write_report(summary: Summary, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps({**asdict(summary), "ok": summary.ok}, indent=1) + "\n")
    rows = [("duration", f"{summary.duration_s:g} s"), ("rates", ", ".join(f"{m} {r:g}/s" for m, r in summary.rates.items())),
            ("rate source", summary.rate_source), ("requests", str(summary.requests)),
            ("errors (target 0)", str(summary.errors)),
            ("achieved req/s", ", ".join(f"{m} {r:g}" for m, r in summary.achieved_rps.items())),
            ("p95 ms", ", ".join(f"{m} {v}" for m, v in summary.p95_ms.items())),
            ("worker RSS start -> end", (f"{summary.rss_start_mb:g} -> {summary.rss_end_mb:g} MiB "
                                        f"({summary.rss_growth:+.1%}, target < +{MAX_RSS_GROWTH:.0%})")),
            ("verdict", "PASS" if summary.ok else "FAIL: " + "; ".join(summary.failures))]
    (folder / "summary.md").write_text("| | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows))
    return folder


def main(argv: list[str] | None = None) -> int:
    import locust  # noqa: F401  (first: gevent monkey-patches sockets before anything opens one)

    from stackctl.catalog.specs import load_specs
    from stackctl.serve.native import NativeStack

    parser = argparse.ArgumentParser(prog="python -m loadtest.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", default="30m", help="e.g. 30m, 90s, 2h (default 30m)")
    parser.add_argument("--host", default=None, help="inference URL (default: the `make serve` stack)")
    parser.add_argument("--metrics", default=None, help="metrics URL for a capacity search (default: the stack's)")
    parser.add_argument("--pid", type=int, default=None, help="TorchServe's pid (default: from run/torchserve.pid)")
    parser.add_argument("--rate", type=float, default=None, help="req/s per model (default: from capacity)")
    parser.add_argument("--fraction", type=float, default=0.5, help="share of measured capacity (default 0.5)")
    parser.add_argument("--models", nargs="*", default=None, help="default: every spec")
    parser.add_argument("--out", type=Path, default=None, help="default reports/soak/<timestamp>")
    args = parser.parse_args(argv)

    stack = NativeStack.from_run_dir(paths.RUN)
    host = args.host or stack.inference_url
    pid = args.pid or stack.pid("torchserve")
    if pid is None or not psutil.pid_exists(pid):
        print("TorchServe is not running: start it with `make serve` (or pass --pid and --host)", file=sys.stderr)
        return 2
    require_loopback(host)
    models = args.models or [s.name for s in load_specs()]
    if args.rate is not None:
        rates, source = {m: args.rate for m in models}, f"--rate {args.rate:g} per model"
    else:
        capacity = latest_capacity()
        if capacity is None:
            print("no capacity report: measuring capacity first (`make capacity`'s search)", flush=True)
            capacity = measure_capacity(host, args.metrics or f"{stack.metrics_url}/metrics", models,
                                        log=lambda line: print(line, flush=True))
        rates, source = plan_rates(models, args.fraction, capacity)
    summary = run_soak(host, pid, rates, parse_duration(args.duration), source,
                       log=lambda line: print(line, flush=True))
    folder = write_report(summary, args.out or REPORTS / "soak" / time.strftime("%Y%m%d-%H%M%S"))
    print((folder / "summary.md").read_text())
    print(f"report: {folder}")
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
