"""Run the Kubernetes TorchServe pod as a Docker container, as a kubelet would, and check its life.

    python -m stackctl.pod.podrun --overlay cpu            # make k8s-pod
    python -m stackctl.pod.podrun --overlay gpu --drop-gpu # the gpu overlay's container, without the GPU

Renders the overlay with kustomize (stackctl.deploy.k8s), translates the torchserve container of the
Deployment into a `docker run` (stackctl.pod.pod_translate: image, command, env, user, read-only root,
capabilities, no-new-privileges, emptyDirs, ConfigMap volumes, limits), then walks the pod's life:
1. startup probe until it passes, then readiness and liveness, each with the manifest's
   initialDelaySeconds / periodSeconds / timeoutSeconds / failureThreshold (exec probes through
   `docker exec`, httpGet through the published port), noticing a container that dies;
2. the sandbox as the server sees it: user, read-only root, /tmp mounted exec, TorchServe on epoll;
3. traffic: every model of config/models/ answers 200 through the published inference port;
4. termination under load: clients keep sending while termination begins; they stop after the
   endpoint-propagation window (a deleted pod leaves the Service endpoints at once, but kube-proxy
   and ingress controllers keep routing to it for a few seconds); preStop runs, then the image's
   stop signal with what is left of terminationGracePeriodSeconds (`docker stop -t`, SIGKILL
   after it, as the kubelet does). Every request started before the clients stopped must get 200,
   and the container must exit before the grace period runs out.
The container and the staged files are always removed. No cluster, registry or GPU needed.

This module runs that life; each step lives in its own module: stackctl.pod.pod_container (the
container: staged files, start, state, logs, exec, removal), stackctl.pod.pod_probes (1),
stackctl.pod.pod_sandbox (2), stackctl.pod.pod_requests (3, and the metrics port), stackctl.pod.pod_drain (4),
stackctl.pod.docker_cli (the docker client), stackctl.pod.pod_report (the Report, PodRunError).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from stackctl.catalog.specs import load_specs
from stackctl.deploy import k8s
from stackctl.pod import pod_translate
from stackctl.pod.docker_cli import engine_answers, free_port, image_present
from stackctl.pod.pod_container import Pod
from stackctl.pod.pod_drain import terminate_under_load
from stackctl.pod.pod_probes import run_probes_until_ready
from stackctl.pod.pod_report import PodRunError, Report
from stackctl.pod.pod_requests import predict, scraped_series
from stackctl.pod.pod_sandbox import sandbox_facts

MODEL_REFS = "k8s/components/model-oci/models.txt"


def render_docs(overlay: str, components: tuple[str, ...] = (), model_refs: Path | None = None) -> list[dict[str, Any]]:
    replaced = {MODEL_REFS: model_refs.read_text()} if model_refs else None
    return [d for d in yaml.safe_load_all(k8s.render(overlay, components, replaced=replaced)) if d]


def make_plan(overlay: str, drop_gpu: bool = False, container_name: str | None = None,
              components: tuple[str, ...] = (), model_refs: Path | None = None,
              extra_env: dict[str, str] | None = None) -> pod_translate.PodPlan:
    docs = render_docs(overlay, components, model_refs)
    container = pod_translate.find_deployment(docs, "torchserve")["spec"]["template"]["spec"]["containers"][0]
    host_ports = {p["containerPort"]: free_port() for p in container.get("ports") or []}
    return pod_translate.plan(docs, host_ports, drop_gpu=drop_gpu, extra_env=extra_env,
                              container_name=container_name or f"podrun-{overlay}-{os.getpid()}")


def use_image(plan: pod_translate.PodPlan, image: str | None) -> None:
    """Run `image` instead of the overlay's, in the init containers that run the same image too."""
    if not image:
        return
    for init in plan.init:
        if init.image == plan.image:
            init.image = image
    plan.image = image


def start_pod(pod: Pod, report: Report, say: Any) -> None:
    """docker run of the init containers, then of the pod's container, and its probes until ready."""
    for note in pod.plan.notes:
        say(f"note: {note}")
    for init in pod.plan.init:
        say(f"$ {' '.join(init.docker_run(pod.staging))}")
    say("$ " + " ".join(report.docker_run))
    pod.start()
    report.init_s = dict(pod.init_seconds)
    if report.init_s:
        say(f"init containers ran to completion: {report.init_s} s")
    run_probes_until_ready(pod, report)


def run(overlay: str = "cpu", drop_gpu: bool = False, image: str | None = None, log: Any = None,
        components: tuple[str, ...] = (), model_refs: Path | None = None,
        extra_env: dict[str, str] | None = None, serve_check: Callable[[Pod], None] | None = None) -> Report:
    """The whole life of the pod; raises PodRunError at the first broken promise. `serve_check`
    (a test's) gets the running pod once every model has answered 200, before termination."""
    say = (lambda msg: print(msg, file=log, flush=True)) if log else (lambda msg: None)
    if not engine_answers():
        raise PodRunError("no Docker engine answers (`docker info` fails): start one (`make engine`, docker/README.md)")
    plan = make_plan(overlay, drop_gpu=drop_gpu, components=components, model_refs=model_refs, extra_env=extra_env)
    use_image(plan, image)
    for wanted in {plan.image, *(i.image for i in plan.init)}:
        if not image_present(wanted):
            raise PodRunError(f"image {wanted} is not on this engine: build it (`make build`, docker/README.md)")
    specs = load_specs()
    with tempfile.TemporaryDirectory(prefix="podrun-") as tmp, Pod(plan, Path(tmp)) as pod:
        report = Report(overlay=overlay, image=plan.image, docker_run=plan.docker_run(Path(tmp)), notes=plan.notes)
        start_pod(pod, report, say)
        say(f"started {report.started_s:.1f}s, ready {report.ready_s:.1f}s, live {report.live_s}s after docker run "
            f"(probe runs {report.probe_runs})")
        report.sandbox = sandbox_facts(pod)
        say(f"sandbox: {report.sandbox}")
        report.answers = {s.name: predict(plan.host_ports["inference"], s) for s in specs}
        say(f"answers: {report.answers}")
        if any(code != 200 for code in report.answers.values()):
            raise PodRunError(f"not every model answered 200: {report.answers}\n{pod.logs()}")
        if serve_check:
            serve_check(pod)
        report.metrics = scraped_series(plan.host_ports["metrics"])
        say(f"metrics: {report.metrics}")
        say(f"terminating under load: preStop {plan.pre_stop}, terminationGracePeriodSeconds {plan.grace_seconds}")
        terminate_under_load(pod, specs, report)
        say(f"drain: {report.drain}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--overlay", default="cpu", choices=k8s.overlays())
    parser.add_argument("--drop-gpu", action="store_true",
                        help="run without the pod's nvidia.com/gpu request (a host without GPUs)")
    parser.add_argument("--image", help="run this image instead of the overlay's (same pod spec otherwise)")
    parser.add_argument("--component", action="append", default=[],
                        help="a component of k8s/components/ to render with the overlay (repeatable)")
    parser.add_argument("--model-refs", type=Path,
                        help=f"with --component model-oci: the refs `make push-models MODEL_REFS=` wrote, "
                             f"rendered instead of {MODEL_REFS}")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="set over every container's env (e.g. MODEL_REGISTRY_PLAIN_HTTP=1 for a "
                             "plain-HTTP registry on loopback); said in the run's notes")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    try:
        extra_env = dict(item.split("=", 1) for item in args.env)
        components = tuple(n for item in args.component for n in item.split())
        report = run(args.overlay, drop_gpu=args.drop_gpu, image=args.image, log=sys.stdout,
                     components=components, model_refs=args.model_refs, extra_env=extra_env)
    except (PodRunError, pod_translate.TranslationError, k8s.RenderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))
    print("ok: the pod started, became ready, served every model and drained on termination")
    return 0


if __name__ == "__main__":
    sys.exit(main())
