"""Locust entry point: one user class per model spec, an optional load shape, and the SLO gate.

Run it from the repository root (`make loadtest`, `make loadtest-ui`) or from a container that
mounts the repository's loadtest/, config/, stackctl/, models/ and handlers/ (the spec loader
checks that each model's handler file exists) side by side under one folder:
    locust -f loadtest/locustfile.py --config loadtest/locust.conf --host http://127.0.0.1:8080

Options of our own (also in locust.conf or as LOCUST_<NAME> environment variables):
  --bad-request-share F  share of deliberately bad requests (expected 4xx count as success), default 0
  --user-rate R          open loop: each user starts R requests/s on a fixed schedule (0 = closed loop)
  --think-time S         closed loop: mean pause between one user's requests, seconds
  --slo-override TEXT    e.g. "digits.p95_ms=50,*.max_error_ratio=0" (specs stay the real source)
  --protocol P           predictions (default: /predictions/<m>) or oip (POST /v2/models/<m>/infer,
                         binary tensor data; the SLO applies per request, items/s printed beside it)
                         or oip-grpc (inference.GRPCInferenceService/ModelInfer at --grpc-address)
  --instances N          oip: instances (items) per request, drawn from the spec's bodies (default 8)
  --grpc-address A       oip-grpc: the OIP gateway's gRPC host:port (default 127.0.0.1:7070)
Load shape: LOADTEST_SHAPE=step|arrival (see shapes.py).
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

# The folder above loadtest/ holds stackctl/ and config/, both in a checkout and in a container
# mount; Locust itself only puts loadtest/ on sys.path. absolute(), not resolve(): a Kubernetes
# ConfigMap mounts each file as a symlink into a hidden subfolder, which resolve() would follow.
_ROOT = str(Path(__file__).absolute().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from locust import events  # noqa: E402
from locust.runners import WorkerRunner  # noqa: E402

from loadtest import payloads, shapes, slo, users  # noqa: E402
from stackctl.catalog.specs import load_specs  # noqa: E402

DEFAULT_ARRIVAL_USER_RATE = 2.0  # requests/s per user: 500 ms between starts before a user falls behind
log = logging.getLogger("loadtest")

SPECS = load_specs()
# Locust picks up User and shape classes from module globals, so each is bound exactly once.
USER_CLASSES = {cls.__name__: cls for cls in (users.make_user_class(spec, __name__) for spec in SPECS)}
globals().update(USER_CLASSES)
SHAPE_CLASSES = {cls.__name__: cls for cls in [shapes.select_shape()] if cls is not None}  # LOADTEST_SHAPE
globals().update(SHAPE_CLASSES)
# Build every request body now, before Locust starts its clock and its heartbeats: it takes a few
# seconds of CPU, and a worker that blocks that long in an event handler is declared missing.
for _spec in SPECS:
    payloads.payloads_for(_spec)


@events.init_command_line_parser.add_listener
def add_options(parser) -> None:
    parser.add_argument("--bad-request-share", type=float, default=0.0, env_var="LOCUST_BAD_REQUEST_SHARE",
                        help="Share (0..1) of deliberately bad requests; their expected 4xx count as success")
    parser.add_argument("--user-rate", type=float, default=0.0, env_var="LOCUST_USER_RATE",
                        help="Open loop: requests/s each user starts on a fixed schedule (0 = closed loop)")
    parser.add_argument("--think-time", type=float, default=0.2, env_var="LOCUST_THINK_TIME",
                        help="Closed loop: mean pause in seconds between one user's requests")
    parser.add_argument("--slo-override", type=str, default="", env_var="LOCUST_SLO_OVERRIDE",
                        help='Replace SLO numbers for this run, e.g. "digits.p95_ms=50,*.max_error_ratio=0"')
    parser.add_argument("--protocol", choices=users.PROTOCOLS, default="predictions", env_var="LOCUST_PROTOCOL",
                        help="predictions: /predictions/<model>; oip: Open Inference Protocol REST, binary tensors; "
                        "oip-grpc: OIP gRPC (tritonclient.grpc)")
    parser.add_argument("--instances", type=int, default=8, env_var="LOCUST_INSTANCES",
                        help="With --protocol oip or oip-grpc: instances (items) per request")
    parser.add_argument("--grpc-address", default="127.0.0.1:7070", env_var="LOCUST_GRPC_ADDRESS",
                        help="With --protocol oip-grpc: the OIP gateway's gRPC host:port")


def slos_for_run(options) -> dict[str, slo.Slo]:
    base = {spec.name: spec.slo for spec in SPECS}
    return slo.apply_overrides(base, slo.parse_overrides(getattr(options, "slo_override", "")))


@events.init.add_listener
def prepare(environment, **_kwargs) -> None:
    """Fail fast on bad options (the master or the single local process)."""
    options = environment.parsed_options
    if options is None or isinstance(environment.runner, WorkerRunner):
        return  # a worker's own options are replaced by the master's
    problems = []
    if not 0 <= options.bad_request_share < 1:
        problems.append("--bad-request-share must be in [0, 1)")
    if options.user_rate < 0 or options.think_time < 0:
        problems.append("--user-rate and --think-time must be >= 0")
    if options.instances < 1:
        problems.append("--instances must be >= 1")
    try:
        slos_for_run(options)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        for problem in problems:
            log.error(problem)
        sys.exit(2)
    if getattr(environment.shape_class, "open_loop", False) and options.user_rate <= 0:
        options.user_rate = DEFAULT_ARRIVAL_USER_RATE  # sent to workers with the spawn message
        log.info("arrival-rate shape: --user-rate defaults to %s requests/s per user", options.user_rate)


@events.quitting.add_listener
def slo_gate(environment, **_kwargs) -> None:
    """Exit non-zero when any model breaches its SLO; print which and by how much."""
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return  # the master (or the single local process) judges the aggregated stats
    # Models whose user class takes part (all, unless classes were picked on the command line).
    taking_part = {cls.spec.name for cls in environment.user_classes if hasattr(cls, "spec")}
    slos = {name: limit for name, limit in slos_for_run(environment.parsed_options).items() if name in taking_part}
    verdicts = slo.judge(slos, slo.observed_from_locust(environment.stats.entries, slos))
    print("\n" + slo.format_summary(verdicts), flush=True)
    if environment.parsed_options.protocol != "predictions":
        print(slo.format_items(verdicts, environment.parsed_options.instances), flush=True)
    if environment.parsed_options.csv_prefix:
        # Exact final numbers for report.py: Locust rewrites <prefix>_stats.csv only once a second.
        path = Path(f"{environment.parsed_options.csv_prefix}{slo.GATE_JSON_SUFFIX}")
        path.write_text(json.dumps(slo.to_json(verdicts), indent=2) + "\n", encoding="utf-8")
    code = slo.exit_code(verdicts)
    if code == 0 and environment.runner is not None and environment.runner.exceptions:
        print("Locust user code raised exceptions (see the log): failing the run", flush=True)
        code = 2
    environment.process_exit_code = code


if __name__ == "__main__":  # step-debug: LOCUST_HOST=http://127.0.0.1:8080 python loadtest/locustfile.py
    from locust import run_single_user

    run_single_user(next(iter(USER_CLASSES.values())))
