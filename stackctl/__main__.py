"""`python -m stackctl <command>`: the entry points the Makefile, the image and the probes call.

`run <name>` runs any other entry point of stackctl, bench and loadtest (stackctl/commands.py
lists them all; each also runs as `python -m <module>`)."""
from __future__ import annotations

import argparse
import sys

from stackctl import commands, paths


def cmd_models(args: argparse.Namespace) -> int:
    from stackctl.catalog.archive import build
    from stackctl.catalog.specs import SpecError, all_specs

    try:
        specs = all_specs()
        unknown = sorted(set(args.names) - {s.key for s in specs})
        if unknown:
            raise SpecError(f"no spec for {', '.join(unknown)} in {paths.SPECS} (known: {', '.join(s.key for s in specs)})")
        build([s for s in specs if not args.names or s.key in args.names], force=args.force)
    except SpecError as exc:
        # One line that names the file and the key: the whole answer, no traceback.
        print(f"make models: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    if args.runtime == "triton":
        from stackctl.serve import triton

        return triton.serve(args.timeout)
    from stackctl.serve.native import NativeStack, Ports
    from stackctl.serve.readiness import NotReady, check_ready

    stack = NativeStack.from_run_dir(paths.RUN) if (paths.RUN / "ports.json").is_file() else NativeStack(paths.RUN, Ports.from_env())
    if stack.running("torchserve"):
        try:
            check_ready(stack.management_url)
            print("TorchServe is already running and ready.")
        except NotReady as exc:
            print(f"TorchServe is already running (pid {stack.pid('torchserve')}) but not ready: {exc}")
    else:
        stack = NativeStack(paths.RUN, Ports.from_env())
        proc = stack.start_torchserve()
        print(f"TorchServe starting (pid {proc.pid}); logs in {stack.run_dir / 'logs'}")
        try:
            status = stack.wait_for_torchserve(proc, timeout=args.timeout)
        except NotReady as exc:
            print(f"TorchServe did not become ready: {exc}\nSee run/torchserve.out, run/front-door.out and run/logs/.",
                  file=sys.stderr)
            stack.stop_all()
            return 1
        print("Ready: " + ", ".join(f"{m} ({w.count('READY')} READY)" for m, w in sorted(status.items())))
    if not args.no_prometheus:
        if stack.running("prometheus"):
            print("Prometheus is already running.")
        else:
            proc = stack.start_prometheus()
            stack.wait_for_prometheus(proc)
    print(f"""
  inference   {stack.inference_url}/predictions/<model>   (front door; TorchServe behind it on :{stack.ports.torchserve_inference})
  OIP (v2)    {stack.inference_url}/v2/models/<model>/infer   REST, Open Inference Protocol
  OIP gRPC    {stack.oip_grpc_address}   inference.GRPCInferenceService (tritonclient.grpc)
  management  {stack.management_url}/models   (loopback only)
  metrics     {stack.metrics_url}/metrics
  prometheus  {stack.prometheus_url if not args.no_prometheus else '(not started)'}

  curl -s -X POST {stack.inference_url}/predictions/langid -H 'Content-Type: application/json' -d '{{"text": "guten Morgen"}}'
  curl -s -X POST {stack.inference_url}/predictions/digits -H 'Content-Type: image/png' --data-binary @tests/data/digit-7.png

Stop with: make stop""")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from stackctl.serve.native import NativeStack

    stack = NativeStack.from_run_dir(paths.RUN)
    stopped = stack.stop_all()
    print("Stopped: " + ", ".join(stopped) if stopped else "Nothing was running.")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from stackctl.serve.native import NativeStack
    from stackctl.serve.readiness import NotReady, model_status

    stack = NativeStack.from_run_dir(paths.RUN)
    for name in ("torchserve", "front-door", "oip-gateway", "prometheus"):
        state = f"running (pid {stack.pid(name)})" if stack.running(name) else "stopped"
        print(f"{name:11s} {state}")
    if stack.running("torchserve"):
        try:
            for model, workers in sorted(model_status(stack.management_url).items()):
                print(f"  {model:10s} workers: {', '.join(workers) or 'none'}")
        except (NotReady, OSError) as exc:
            print(f"  management API: {exc}")
    return 0


def cmd_ready(args: argparse.Namespace) -> int:
    from stackctl.serve.readiness import NotReady, probe
    from stackctl.serve.token_auth import management_token

    try:
        status, degraded = probe(args.management, set(args.model or []) or None, management_token(), args.timeout)
    except NotReady as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1
    if degraded:
        # Ready for the others: these answer 503 until a worker is back (alert TorchServeModelNoReadyWorker).
        print("ready, but no READY worker for: " + ", ".join(degraded), file=sys.stderr)
    elif not args.quiet:
        print("ready: " + ", ".join(sorted(status)))
    return 0


def cmd_set_default(args: argparse.Namespace) -> int:
    import urllib.error

    from stackctl.catalog.versions import set_default
    from stackctl.serve.token_auth import management_token

    try:
        set_default(args.management, args.name, args.version, management_token())
    except (urllib.error.URLError, OSError) as exc:
        print(f"set-default {args.name} {args.version}: {exc}", file=sys.stderr)
        return 1
    print(f"/predictions/{args.name} now answers with version {args.version} "
          f"(until this server restarts: then {args.name}.mar's version is the default again)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return commands.run(args.name, args.args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stackctl", description=__doc__, epilog=commands.listing(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="train (if needed) and archive models into model_store/")
    p.add_argument("names", nargs="*", help="spec names, <name> or <name>@<version> (default: every spec in config/models/)")
    p.add_argument("--force", action="store_true", help="rebuild even when nothing changed")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("serve", help="start TorchServe (+ Prometheus) natively and wait for readiness")
    p.add_argument("--timeout", type=float, default=180.0)
    p.add_argument("--no-prometheus", action="store_true")
    p.add_argument("--runtime", choices=("torchserve", "triton"), default="torchserve",
                   help="triton: Triton Inference Server over the same archives (docs/triton.md)")
    p.set_defaults(func=cmd_serve)

    sub.add_parser("stop", help="stop what `serve` started").set_defaults(func=cmd_stop)
    sub.add_parser("status", help="processes and worker status").set_defaults(func=cmd_status)

    p = sub.add_parser("ready", help="exit 0 iff every model has had a READY worker since the server started and the API answers (probes, healthchecks)")
    p.add_argument("--management", default="http://127.0.0.1:8081")
    p.add_argument("--model", action="append", help="also require this model to be registered")
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_ready)

    p = sub.add_parser("set-default", help="make VERSION the default of model NAME on a running server")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--management", default="http://127.0.0.1:8081")
    p.set_defaults(func=cmd_set_default)

    p = sub.add_parser("run", help="run another entry point by name (listed below): run <name> [args]")
    p.add_argument("name", choices=sorted(commands.BY_NAME), metavar="name", help="a name from the list below")
    p.add_argument("args", nargs=argparse.REMAINDER, help="its own arguments, as `python -m <module>` takes them")
    p.set_defaults(func=cmd_run)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
