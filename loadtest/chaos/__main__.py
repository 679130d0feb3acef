"""python -m loadtest.chaos: see the package's docstring (loadtest/chaos/__init__.py)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import locust  # noqa: F401  (first: gevent monkey-patches sockets before anything opens one)

from loadtest.chaos import compose, report, schedule
from loadtest.chaos import plan as chaos_plan
from loadtest.soak import REPORTS, latest_capacity, plan_rates, require_loopback
from stackctl import paths
from stackctl.catalog.specs import load_specs
from stackctl.serve import front_door, wait_bounds
from stackctl.serve.native import NativeStack, Ports

FALLBACK_RATE = 10.0   # req/s per model when no capacity report exists (a capacity search takes minutes)


def _rates(models: list[str], fraction: float, rate: float | None) -> tuple[dict[str, float], str]:
    if rate is not None:
        return {m: rate for m in models}, f"--rate {rate:g} per model"
    capacity = latest_capacity()
    if capacity is None:
        return {m: FALLBACK_RATE for m in models}, f"no capacity report (`make capacity`): {FALLBACK_RATE:g} req/s per model"
    return plan_rates(models, fraction, capacity)


LOG_TMPFS = "size=16m"   # the log folder's own small disk, for the log-disk-full scenario


def _log_tmpfs(logs: Path) -> str:
    """Mount a small tmpfs as the stack's log folder (root only: else the scenario is skipped)."""
    logs.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return ""
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", LOG_TMPFS, "chaos-logs", str(logs)], check=False)
    return str(logs) if mounted.returncode == 0 else ""


def _own_stack(run_dir: Path, log_tmpfs: bool) -> tuple[NativeStack, str]:
    log_dir = _log_tmpfs(run_dir / "logs") if log_tmpfs else ""
    stack = NativeStack(run_dir=run_dir, ports=Ports.free())
    proc = stack.start_torchserve()
    stack.wait_for_torchserve(proc, timeout=240)
    stack.wait_for_prometheus(stack.start_prometheus())
    return stack, log_dir


def _hooks(stack: NativeStack, model: str, workers: int, own: bool, log_dir: str = "") -> schedule.Hooks:
    def prometheus() -> tuple[int | None, object]:
        return stack.pid("prometheus"), lambda: stack.wait_for_prometheus(stack.start_prometheus())
    server_pid = stack.pid("torchserve")
    if server_pid is None:
        raise SystemExit("TorchServe is not running: start it with `make serve` (or leave out --against-serve)")
    return schedule.Hooks(stack.management_url, stack.inference_url, workers, server_pid,
                          prometheus if own else None, stack.prometheus_url,  # type: ignore[arg-type]
                          log_dir=log_dir)


def _compose_run(args: argparse.Namespace, specs: list, spec: object) -> tuple:
    """The same schedule against `docker/compose.sh up torchserve prometheus` (a project of its own,
    free loopback ports), its faults from outside the container (loadtest/chaos/compose.py)."""
    stack = compose.ComposeStack.up()
    try:
        urls = {port: stack.url(service, port) for service, port in (("torchserve", 8080), ("torchserve", 8081),
                                                                       ("prometheus", 9090))}
        require_loopback(urls[8080])
        default = front_door.default_response_timeout()
        bounds = {m: b.seconds for m, b in wait_bounds.from_store(paths.MODEL_STORE, default).items()}
        rates, source = _rates([s.name for s in specs], args.fraction, args.rate)
        scenarios = tuple(args.scenarios or chaos_plan.COMPOSE_SCENARIOS)
        plan = chaos_plan.Plan(args.model, rates, bounds, scenarios, loop_s=args.loop_seconds,
                               stop_s=wait_bounds.from_serving(args.model, spec.serving, default).response_timeout_s + 5.0)  # type: ignore[attr-defined]
        prometheus = stack.container("prometheus")
        hooks = schedule.Hooks(urls[8081], urls[8080], spec.serving.min_workers, 0,  # type: ignore[attr-defined]
                               lambda: compose.prometheus_hooks(prometheus, urls[9090] + "/-/ready"), urls[9090],
                               container=stack.container("torchserve"))
        records, stages = schedule.run(specs, plan, hooks, log=lambda line: print(line, flush=True))
        return records, stages, plan, source + "; the compose stack (docker-compose.yml)"
    finally:
        stack.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.chaos", description=__doc__)
    parser.add_argument("--against-serve", action="store_true", help="fault the `make serve` stack (run/) instead of one of its own")
    parser.add_argument("--model", default="langid", help="the model whose workers are faulted (default langid)")
    parser.add_argument("--against-compose", action="store_true",
                        help="fault the compose stack (`make up`'s images, a project of its own on free loopback ports)")
    parser.add_argument("--scenarios", nargs="*", default=None,
                        choices=sorted(set(chaos_plan.SCENARIOS) | set(chaos_plan.COMPOSE_SCENARIOS)))
    parser.add_argument("--fraction", type=float, default=0.05, help="share of measured capacity (default 0.05)")
    parser.add_argument("--rate", type=float, default=None, help="req/s per model (default: from capacity)")
    parser.add_argument("--loop-seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=None, help="default reports/chaos/<timestamp>")
    args = parser.parse_args(argv)

    specs = load_specs()
    spec = next((s for s in specs if s.name == args.model), None)
    if spec is None:
        parser.error(f"no spec for model {args.model!r}")
    if args.against_compose:
        records, stages, plan, source = _compose_run(args, specs, spec)
        return _report(args, records, stages, plan, source)
    own = not args.against_serve
    scenarios = tuple(args.scenarios or chaos_plan.SCENARIOS)
    stack, log_dir = (_own_stack(Path(tempfile.mkdtemp(prefix="chaos-")), "log-disk-full" in scenarios) if own
                      else (NativeStack.from_run_dir(paths.RUN), ""))
    try:
        require_loopback(stack.inference_url)
        default = front_door.default_response_timeout()
        bounds = {m: b.seconds for m, b in wait_bounds.from_store(stack.model_store, default).items()}
        rates, source = _rates([s.name for s in specs], args.fraction, args.rate)
        plan = chaos_plan.Plan(args.model, rates, bounds, scenarios, loop_s=args.loop_seconds,
                             stop_s=wait_bounds.from_serving(spec.name, spec.serving, default).response_timeout_s + 5.0)
        workers = spec.serving.min_workers
        records, stages = schedule.run(specs, plan, _hooks(stack, args.model, workers, own, log_dir),
                                       log=lambda line: print(line, flush=True))
    finally:
        if own:
            stack.stop_all()
            if log_dir:
                subprocess.run(["umount", log_dir], check=False)
    return _report(args, records, stages, plan, source)


def _report(args: argparse.Namespace, records: schedule.Recorder, stages: list, plan: chaos_plan.Plan, source: str) -> int:
    everything = records.records + records.unanswered()
    folder, broken = report.write(args.out or REPORTS / "chaos" / time.strftime("%Y%m%d-%H%M%S"),
                                  everything, stages, plan, source)
    print((folder / "summary.md").read_text())
    print(f"report: {folder}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
