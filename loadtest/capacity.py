"""`make capacity`: per model, the highest arrival rate that still meets its p95 SLO with no 5xx.

    python -m loadtest.capacity --host http://127.0.0.1:8080 --metrics http://127.0.0.1:8082/metrics

For each model in turn (only that model gets load), open-loop paced users (see shapes.py) offer
`--start-rps`, then `--factor` times more per step. Each step runs `--warmup-seconds` (not
counted) plus `--step-seconds` (measured from Locust's own statistics, reset at the start of the
window). The search stops at the first step that breaches: p95 above the model's SLO, any 5xx, an
error ratio above the SLO's, or achieved throughput below 90% of the offered rate (the server,
or this load generator, cannot keep up). It also stops when the model's `--budget` seconds would
be exceeded or at `--max-rps`. The answer per model is the last step that passed.

The mean batch size per step is the delta of `handler_batch_size_sum / _count` on TorchServe's
metrics endpoint (a ratio of counters, not a percentile). Results go to
reports/loadtest/capacity-<timestamp>/: capacity.csv (one row per model), steps.csv (every
step), capacity.md (the table).

Locust shares this machine's CPUs with the server when both run here; on a small host the load
generator becomes the limit first (Locust logs a CPU warning). Run it from another machine, or
use the distributed compose/Kubernetes setup, for a deployment's real capacity.
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from loadtest import payloads, slo
from loadtest.shapes import users_for_rate
from stackctl.specs import ModelSpec, load_specs

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports" / "loadtest"
MIN_ACHIEVED = 0.9  # a step whose achieved rate is below 90% of the offered rate counts as a breach

_SAMPLE = re.compile(r'^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_total(text: str, name: str, labels: dict[str, str]) -> float | None:
    """Sum of every sample of `name` whose labels include `labels` (Prometheus text format)."""
    total, found = 0.0, False
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) != name:
            continue
        have = dict(_LABEL.findall(match.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
            found = True
    return total if found else None


def batch_counters(metrics_url: str | None, model: str) -> tuple[float, float] | None:
    """(sum, count) of the handler_batch_size histogram for `model`, or None if unavailable."""
    if not metrics_url:
        return None
    import urllib.request  # here, not at the top: it imports ssl, which must come after Locust

    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as answer:
            text = answer.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    total = metric_total(text, "handler_batch_size_sum", {"ModelName": model})
    count = metric_total(text, "handler_batch_size_count", {"ModelName": model})
    return None if total is None or count is None else (total, count)


def mean_batch(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def default_metrics_url(host: str) -> str:
    """The inference URL's host on port 8082 (TorchServe's metrics port)."""
    parts = urlsplit(host)
    return urlunsplit((parts.scheme, f"{parts.hostname}:8082", "/metrics", "", ""))


def per_user_rate(spec: ModelSpec) -> float:
    """Requests/s per paced user: one start every 2 x p99 SLO, so a user that stays within its
    SLO never falls behind its schedule (bounded to 0.5..10/s)."""
    return min(10.0, max(0.5, 1000.0 / (2 * spec.slo.p99_ms)))


@dataclass
class Step:
    model: str
    offered_rps: float
    users: int
    seconds: float
    requests: int
    failures: int
    status_5xx: int
    achieved_rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_batch_size: float | None
    breaches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaches


def judge_step(step: Step, limit: slo.Slo) -> list[str]:
    """Why this step is beyond the model's capacity (empty: within SLO)."""
    found = []
    if step.requests == 0:
        found.append("no requests completed")
    if step.p95_ms is not None and step.p95_ms > limit.p95_ms:
        found.append(f"p95 {step.p95_ms:.0f} ms > {limit.p95_ms:g} ms")
    if step.status_5xx:
        found.append(f"{step.status_5xx} answers with HTTP 5xx")
    if step.requests and step.failures / step.requests > limit.max_error_ratio:
        found.append(f"error ratio {step.failures / step.requests:.2%} > {limit.max_error_ratio:.2%}")
    if step.achieved_rps < MIN_ACHIEVED * step.offered_rps:
        found.append(f"achieved {step.achieved_rps:.1f} of {step.offered_rps:g} req/s offered")
    return found


def next_rate(rate: float, factor: float) -> float:
    """The next offered rate: `factor` times more, at least +1 req/s, rounded to 0.1."""
    return round(max(rate * factor, rate + 1), 1)


@dataclass
class Result:
    model: str
    max_rps_within_slo: float
    best: Step | None
    steps: list[Step]
    stopped_because: str


def search(spec: ModelSpec, limit: slo.Slo, host: str, metrics_url: str | None, *, start_rps: float,
           factor: float, max_rps: float, step_seconds: float, warmup_seconds: float, budget: float,
           log=print) -> Result:
    """Step the offered rate for one model until the first breach or the end of its budget."""
    import gevent
    from locust.env import Environment

    from loadtest import users

    user_class = users.make_user_class(spec)
    user_class.bad_share = 0.0
    payloads.payloads_for(spec)  # build bodies before the clock starts
    env = Environment(user_classes=[user_class], host=host)
    runner = env.create_local_runner()
    server_errors = [0]

    def count_5xx(response=None, **_kwargs) -> None:
        if response is not None and (getattr(response, "status_code", 0) or 0) >= 500:
            server_errors[0] += 1

    env.events.request.add_listener(count_5xx)
    steps: list[Step] = []
    deadline = time.monotonic() + budget
    rate, stopped = start_rps, ""
    try:
        while True:
            if time.monotonic() + warmup_seconds + step_seconds > deadline:
                stopped = f"time budget ({budget:g} s) used"
                break
            n = users_for_rate(rate, per_user_rate(spec))
            user_class.user_rate = rate / n  # n users together offer exactly `rate`
            runner.start(n, spawn_rate=n)  # all at once; each user starts at a random phase
            gevent.sleep(warmup_seconds)
            env.stats.reset_all()
            server_errors[0] = 0
            before = batch_counters(metrics_url, spec.name)
            started = time.monotonic()
            gevent.sleep(step_seconds)
            elapsed = time.monotonic() - started
            after = batch_counters(metrics_url, spec.name)
            entry = env.stats.get(spec.name, "POST")
            pct = entry.get_response_time_percentile if entry.num_requests else (lambda _p: None)
            step = Step(spec.name, rate, n, round(elapsed, 2), entry.num_requests, entry.num_failures,
                        server_errors[0], round(entry.num_requests / elapsed, 2), pct(0.5), pct(0.95), pct(0.99),
                        mean_batch(before, after))
            step.breaches = judge_step(step, limit)
            steps.append(step)
            log(f"  {spec.name}: offered {rate:g} req/s ({n} users): achieved {step.achieved_rps:g}, "
                f"p50/p95/p99 {step.p50_ms}/{step.p95_ms}/{step.p99_ms} ms, batch "
                f"{'-' if step.mean_batch_size is None else f'{step.mean_batch_size:.2f}'}"
                f"{'' if step.ok else '  -> ' + '; '.join(step.breaches)}")
            if not step.ok:
                stopped = "; ".join(step.breaches)
                break
            if rate >= max_rps:
                stopped = f"reached --max-rps {max_rps:g}"
                break
            rate = min(max_rps, next_rate(rate, factor))
    finally:
        runner.quit()
    passed = [s for s in steps if s.ok]
    best = passed[-1] if passed else None
    return Result(spec.name, best.achieved_rps if best else 0.0, best, steps, stopped)


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


COLUMNS = ("model", "max_rps_within_slo", "p50_ms", "p95_ms", "p99_ms", "mean_batch_size",
           "offered_rps", "users", "slo_p95_ms", "stopped_because")


def table_rows(results: list[Result], slos: dict[str, slo.Slo]) -> list[dict[str, str]]:
    rows = []
    for r in results:
        b = r.best
        rows.append({"model": r.model, "max_rps_within_slo": f"{r.max_rps_within_slo:.1f}",
                     "p50_ms": _fmt(b and b.p50_ms), "p95_ms": _fmt(b and b.p95_ms), "p99_ms": _fmt(b and b.p99_ms),
                     "mean_batch_size": _fmt(b and b.mean_batch_size, 2),
                     "offered_rps": _fmt(b and b.offered_rps, 1), "users": str(b.users) if b else "-",
                     "slo_p95_ms": f"{slos[r.model].p95_ms:g}", "stopped_because": r.stopped_because})
    return rows


def write_outputs(folder: Path, results: list[Result], slos: dict[str, slo.Slo]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rows = table_rows(results, slos)
    with (folder / "capacity.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    step_fields = [f for f in asdict(results[0].steps[0])] if results and results[0].steps else ["model"]
    with (folder / "steps.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=step_fields)
        writer.writeheader()
        for r in results:
            for s in r.steps:
                writer.writerow({**asdict(s), "breaches": "; ".join(s.breaches)})
    header = ("model", "max req/s within SLO", "p50 ms", "p95 ms", "p99 ms", "mean batch", "SLO p95 ms",
              "stopped because")
    keys = ("model", "max_rps_within_slo", "p50_ms", "p95_ms", "p99_ms", "mean_batch_size", "slo_p95_ms",
            "stopped_because")
    markdown = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                         + ["| " + " | ".join(row[k] for k in keys) + " |" for row in rows])
    (folder / "capacity.md").write_text(markdown + "\n", encoding="utf-8")
    return markdown


def main(argv: list[str] | None = None) -> int:
    # Locust before anything opens a socket: importing it monkey-patches sockets and ssl for gevent.
    import locust  # noqa: F401

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="http://127.0.0.1:8080", help="TorchServe inference URL")
    parser.add_argument("--metrics", default=None, help="metrics URL (default: the host on port 8082); "
                        "'none' to skip batch sizes")
    parser.add_argument("--models", nargs="*", default=None, help="default: every spec")
    parser.add_argument("--budget", type=float, default=120, help="seconds per model, at most")
    parser.add_argument("--step-seconds", type=float, default=10)
    parser.add_argument("--warmup-seconds", type=float, default=3)
    parser.add_argument("--start-rps", type=float, default=5)
    parser.add_argument("--factor", type=float, default=1.5)
    parser.add_argument("--max-rps", type=float, default=5000)
    parser.add_argument("--slo-override", default="", help='e.g. "digits.p95_ms=50"')
    parser.add_argument("--out", type=Path, default=None, help="report folder "
                        "(default reports/loadtest/capacity-<timestamp>)")
    args = parser.parse_args(argv)
    if not args.host.startswith(("http://", "https://")):
        parser.error(f"--host/HOST must be a URL such as http://127.0.0.1:8080, got {args.host!r}")
    if args.factor <= 1 or args.start_rps <= 0 or args.step_seconds <= 0 or args.budget <= 0:
        parser.error("need --factor > 1 and positive --start-rps, --step-seconds, --budget")
    specs = [s for s in load_specs() if args.models is None or s.name in args.models]
    if args.models and len(specs) != len(args.models):
        parser.error(f"unknown model in {args.models}; known: {[s.name for s in load_specs()]}")
    slos = slo.apply_overrides({s.name: s.slo for s in specs}, slo.parse_overrides(args.slo_override))
    metrics_url = None if args.metrics == "none" else (args.metrics or default_metrics_url(args.host))
    folder = args.out or REPORTS / f"capacity-{time.strftime('%Y%m%d-%H%M%S')}"
    results = []
    for spec in specs:
        print(f"{spec.name}: searching from {args.start_rps:g} req/s (x{args.factor:g} per step, "
              f"{args.step_seconds:g} s steps, budget {args.budget:g} s, p95 SLO {slos[spec.name].p95_ms:g} ms)",
              flush=True)
        results.append(search(spec, slos[spec.name], args.host, metrics_url, start_rps=args.start_rps,
                              factor=args.factor, max_rps=args.max_rps, step_seconds=args.step_seconds,
                              warmup_seconds=args.warmup_seconds, budget=args.budget,
                              log=lambda line: print(line, flush=True)))
    print("\n" + write_outputs(folder, results, slos))
    print(f"\nreport folder: {folder}")
    return 0 if all(r.max_rps_within_slo > 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
