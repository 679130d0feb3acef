"""`make capacity`: per model, the highest arrival rate that still meets its p95 SLO with no 5xx.

    python -m loadtest.capacity --host http://127.0.0.1:8080 --metrics http://127.0.0.1:8082/metrics

For each model in turn (only that model gets load), through the load driver (driver.py):
1. estimate: `--estimate-users` closed-loop users with no think time; their throughput is the
   server's throughput at saturation, an upper bound on what an open loop can sustain;
2. search (search.py): open-loop steps at arrival rates from just below that estimate, bisected
   until a passing and a failing rate are within `--tolerance`. A step fails on p95 above the
   model's SLO, any 5xx, an error ratio above the SLO's, or less than MIN_ACHIEVED of the offered
   rate achieved (the server, or this load generator, cannot keep up).
Every step is `--warmup-seconds` (not counted) plus `--step-seconds` measured. `--budget` bounds
each model's search: one cut short is reported as "≥ X" (a lower bound), never as a maximum.

Results go to reports/loadtest/capacity-<timestamp>/: capacity.csv (one row per model), steps.csv
(every step), capacity.md (the table). Locust shares the CPUs with the server when both run here;
run it from another machine for a deployment's real capacity.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest import slo
from loadtest.measurement import Measurement
from loadtest.search import Search, find_capacity
from stackctl.catalog.specs import ModelSpec, load_specs

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports" / "loadtest"
MIN_ACHIEVED = 0.95   # an open loop that sustains its rate achieves it, less the window's edge effects
DEFAULT_BUDGET = 90   # s per model: the estimate and ~6 open-loop steps at the default step length


# steps.csv's columns, in the order they have always had (the measurement's, then capacity's own).
STEP_COLUMNS = ("model", "mode", "offered_rps", "users", "seconds", "requests", "failures", "status_5xx",
                "achieved_rps", "p50_ms", "p95_ms", "p99_ms", "mean_batch_size", "breaches")


@dataclass
class Step:
    """One step of the search: the load's measurement, the server's mean batch size over it, and
    why it is beyond the model's capacity (empty: within SLO; the closed-loop estimate is not judged)."""

    measured: Measurement
    mean_batch_size: float | None
    breaches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaches

    def to_row(self) -> dict[str, Any]:
        """steps.csv's row: the measurement (its `rps` named `achieved_rps`), then capacity's own."""
        m = self.measured
        names = {"achieved_rps": m.rps, "mean_batch_size": self.mean_batch_size,
                 "breaches": "; ".join(self.breaches)}
        return {k: names[k] if k in names else getattr(m, k) for k in STEP_COLUMNS}


def judge_step(step: Step, limit: slo.Slo) -> list[str]:
    """Why this step is beyond the model's capacity (empty: within SLO)."""
    m = step.measured
    found = []
    if m.requests == 0:
        found.append("no requests completed")
    if m.p95_ms is not None and m.p95_ms > limit.p95_ms:
        found.append(f"p95 {m.p95_ms:.0f} ms > {limit.p95_ms:g} ms")
    if m.status_5xx:
        found.append(f"{m.status_5xx} answers with HTTP 5xx")
    if m.requests and m.error_ratio > limit.max_error_ratio:
        found.append(f"error ratio {m.error_ratio:.2%} > {limit.max_error_ratio:.2%}")
    if m.offered_rps and m.rps < MIN_ACHIEVED * m.offered_rps:
        found.append(f"achieved {m.rps:.1f} of {m.offered_rps:g} req/s offered")
    return found


@dataclass
class Result:
    model: str
    search: Search
    estimate: Step | None
    best: Step | None
    steps: list[Step]
    streaming: bool = False   # a `sequence:` spec: each request is one chunk, each user one stream


@dataclass(frozen=True)
class Plan:
    budget: float = DEFAULT_BUDGET
    step_seconds: float = 8.0
    warmup_seconds: float = 3.0
    estimate_users: int = 128     # TorchServe queues up to job_queue_size (200) per model
    tolerance: float = 0.05
    max_rps: float = 5000.0
    protocol: str = "predictions"  # or "oip": OIP REST requests of `instances` items (users.PROTOCOLS)
    instances: int = 1


def measure_model(spec: ModelSpec, limit: slo.Slo, host: str, metrics_url: str | None, plan: Plan,
                  log=print) -> Result:
    """The closed-loop estimate, then the open-loop search, for one model alone."""
    from loadtest import payloads, users
    from loadtest.driver import Driver
    from loadtest.server_metrics import BatchProbe

    payloads.payloads_for(spec)  # build bodies before the clock starts
    deadline = time.monotonic() + plan.budget
    steps: list[Step] = []

    def record(measured: Measurement, batch: float | None) -> Step:
        step = Step(measured, batch)
        step.breaches = judge_step(step, limit) if measured.mode == "open" else []
        steps.append(step)
        log(describe_step(step))
        return step

    user = users.make_user_class(spec, protocol=plan.protocol, instances=plan.instances)
    most_users = concurrency(spec, plan)
    with Driver([user], host) as driver:
        probe = BatchProbe(metrics_url, spec.name)
        estimate = record(*driver.closed_step(most_users, plan.warmup_seconds, plan.step_seconds, probe))

        def passes(rate: float) -> bool:
            # At most as many paced users (requests outstanding) as the estimate had: the server took
            # that many without a 5xx, while more can overflow TorchServe's job queue (503) on a
            # momentary stall of a shared host. Users beyond it are queued here, as lateness.
            return record(*driver.open_step(rate, plan.warmup_seconds, plan.step_seconds, probe, most_users)).ok

        step_cost = plan.warmup_seconds + plan.step_seconds
        search = find_capacity(passes, max(estimate.measured.rps, 1.0),
                               lambda: time.monotonic() + step_cost <= deadline,
                               tolerance=plan.tolerance, max_rate=plan.max_rps)
    best = max((s for s in steps if s.measured.mode == "open" and s.ok), key=lambda s: s.measured.offered_rps or 0,
               default=None)
    return Result(spec.name, search, estimate, best, steps, streaming=spec.sequence is not None)


def concurrency(spec: ModelSpec, plan: Plan) -> int:
    """The most users (requests outstanding) a step may have. For a streaming model each user holds
    one stream, and streams beyond a worker's `max_live_per_worker` get 429: at most that many, so
    none is refused even if TorchServe puts every stream on one worker (it does not balance them)."""
    if spec.sequence is None:
        return plan.estimate_users
    return min(plan.estimate_users, spec.sequence.max_live_per_worker)


def describe_step(step: Step) -> str:
    """The progress line of one step."""
    m, batch = step.measured, step.mean_batch_size
    offered = "" if m.offered_rps is None else f"{m.offered_rps:g} req/s offered, "
    return (f"  {m.model} {m.mode:6s} {offered}{m.users} users: achieved {m.rps:g}, p50/p95/p99 "
            f"{m.p50_ms}/{m.p95_ms}/{m.p99_ms} ms, batch {'-' if batch is None else f'{batch:.2f}'}"
            f"{'' if step.ok else '  -> ' + '; '.join(step.breaches)}")


def main(argv: list[str] | None = None) -> int:
    # Locust before anything opens a socket: importing it monkey-patches sockets and ssl for gevent.
    import locust  # noqa: F401

    from loadtest.capacity_report import write_outputs
    from loadtest.server_metrics import default_metrics_url

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="http://127.0.0.1:8080", help="TorchServe inference URL")
    parser.add_argument("--metrics", default=None, help="metrics URL (default: the host on port 8082); "
                        "'none' to skip batch sizes")
    parser.add_argument("--models", nargs="*", default=None, help="default: every spec")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET, help="seconds per model, at most")
    parser.add_argument("--step-seconds", type=float, default=Plan.step_seconds)
    parser.add_argument("--warmup-seconds", type=float, default=Plan.warmup_seconds)
    parser.add_argument("--estimate-users", type=int, default=Plan.estimate_users,
                        help="closed-loop users of the estimate; also the most paced users of a step")
    parser.add_argument("--tolerance", type=float, default=Plan.tolerance, help="stop when pass and fail are this close")
    parser.add_argument("--max-rps", type=float, default=Plan.max_rps)
    parser.add_argument("--slo-override", default="", help='e.g. "digits.p95_ms=50"')
    parser.add_argument("--protocol", choices=("predictions", "oip"), default="predictions",
                        help="oip: POST /v2/models/<m>/infer with --instances items per request (binary tensors); "
                        "rates stay requests/s, items/s = requests/s x instances")
    parser.add_argument("--instances", type=int, default=8, help="with --protocol oip: items per request")
    parser.add_argument("--out", type=Path, default=None, help="report folder "
                        "(default reports/loadtest/capacity-<timestamp>)")
    args = parser.parse_args(argv)
    if not args.host.startswith(("http://", "https://")):
        parser.error(f"--host/HOST must be a URL such as http://127.0.0.1:8080, got {args.host!r}")
    if args.step_seconds <= 0 or args.budget <= 0 or args.estimate_users <= 0 or args.tolerance <= 0 \
            or args.instances <= 0:
        parser.error("need positive --step-seconds, --budget, --estimate-users, --tolerance, --instances")
    specs = [s for s in load_specs() if args.models is None or s.name in args.models]
    if args.models and len(specs) != len(args.models):
        parser.error(f"unknown model in {args.models}; known: {[s.name for s in load_specs()]}")
    slos = slo.apply_overrides({s.name: s.slo for s in specs}, slo.parse_overrides(args.slo_override))
    metrics_url = None if args.metrics == "none" else (args.metrics or default_metrics_url(args.host))
    plan = Plan(args.budget, args.step_seconds, args.warmup_seconds, args.estimate_users, args.tolerance, args.max_rps,
                args.protocol, args.instances if args.protocol == "oip" else 1)
    folder = args.out or REPORTS / f"capacity-{time.strftime('%Y%m%d-%H%M%S')}"
    results = []
    for spec in specs:
        print(f"{spec.name}: closed-loop estimate with {concurrency(spec, plan)} users, then open-loop bisection "
              f"({plan.step_seconds:g} s steps, budget {plan.budget:g} s, p95 SLO {slos[spec.name].p95_ms:g} ms)",
              flush=True)
        results.append(measure_model(spec, slos[spec.name], args.host, metrics_url, plan,
                                     log=lambda line: print(line, flush=True)))
    print("\n" + write_outputs(folder, results, slos))
    if plan.protocol == "oip":
        print("\n" + "\n".join(f"{r.model}: capacity {r.search.capacity:g} req/s = "
                               f"{r.search.capacity * plan.instances:g} items/s ({plan.instances} per request)"
                               for r in results))
    print(f"\nreport folder: {folder}")
    return 0 if all(r.search.capacity > 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
