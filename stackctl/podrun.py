"""Run the Kubernetes TorchServe pod as a Docker container, as a kubelet would, and check its life.

    python -m stackctl.podrun --overlay cpu            # make k8s-pod
    python -m stackctl.podrun --overlay gpu --drop-gpu # the gpu overlay's container, without the GPU

Renders the overlay with kustomize (stackctl.k8s), translates the torchserve container of the
Deployment into a `docker run` (stackctl.pod_translate: image, command, env, user, read-only root,
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
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

import yaml

from stackctl import k8s, pod_translate
from stackctl.specs import ModelSpec, load_specs

# The manifest's preStop assumes 5 s for endpoint removal to reach every proxy (its comment):
# clients keep sending this long after termination begins.
ENDPOINT_PROPAGATION_S = 5.0
DRAIN_CLIENTS = 8
# The kubelet's floor for what is left of the grace period after preStop.
MIN_GRACE_AFTER_PRESTOP_S = 2


class PodRunError(RuntimeError):
    """The pod would not have come up, served or stopped as the manifest promises (message says how)."""


# ------------------------------------------------------------------------------------------------
# Docker

def docker_binary() -> str:
    found = os.environ.get("DOCKER") or shutil.which("docker")
    if not found:
        raise PodRunError("no docker client on PATH (set DOCKER=/path/to/docker)")
    return found


def docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([docker_binary(), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise PodRunError(f"docker {' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


def engine_answers() -> bool:
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False).returncode == 0
    except (PodRunError, subprocess.TimeoutExpired):
        return False


def image_present(image: str) -> bool:
    try:
        return docker("image", "inspect", image, timeout=30, check=False).returncode == 0
    except (PodRunError, subprocess.TimeoutExpired):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------------
# Requests

def sample_request(spec: ModelSpec) -> tuple[bytes, str]:
    """One valid request body for a model, by the kind of input its handler settings declare."""
    if "image" in spec.handler_config:
        from PIL import Image, ImageDraw  # only image models need Pillow
        image = Image.new("L", (28, 28), 255)
        ImageDraw.Draw(image).line([(14, 4), (14, 24)], fill=0, width=3)
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue(), "image/png"
    if "text" in spec.handler_config:
        return json.dumps({"text": "guten morgen"}).encode(), "application/json"
    raise PodRunError(f"model {spec.name}: its spec declares neither handler.image nor handler.text")


def predict(inference_port: int, spec: ModelSpec, timeout: float = 30) -> int:
    body, content_type = sample_request(spec)
    request = urllib.request.Request(f"http://127.0.0.1:{inference_port}/predictions/{spec.name}", data=body,
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


# The frontend's counters (the HPA's inputs) and a handler histogram: the latter appears only when
# metrics.yaml was found (TS_METRICS_CONFIG, since the pod's working directory is not /app).
SERIES = ("ts_inference_requests_total", "ts_queue_latency_microseconds", "handler_request_seconds_bucket")


def scraped_series(metrics_port: int) -> dict[str, bool]:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as answer:
        text = answer.read().decode("utf-8", "replace")
    return {name: any(line.startswith(name) for line in text.splitlines()) for name in SERIES}


# ------------------------------------------------------------------------------------------------
# The pod

@dataclass
class Report:
    overlay: str
    image: str
    docker_run: list[str]
    notes: list[str] = field(default_factory=list)
    started_s: float | None = None           # startup probe passed, seconds after `docker run`
    ready_s: float | None = None             # readiness passed
    live_s: float | None = None              # first liveness success
    probe_runs: dict[str, int] = field(default_factory=dict)
    sandbox: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, bool] = field(default_factory=dict)   # series the metrics port serves
    drain: dict[str, Any] = field(default_factory=dict)


class Pod:
    """One container made from a PodPlan; `with Pod(...) as pod:` always removes it."""

    def __init__(self, plan: pod_translate.PodPlan, staging: Path) -> None:
        self.plan = plan
        self.staging = staging
        self.started_at = 0.0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def stage_files(self) -> None:
        for rel, content in self.plan.files.items():
            path = self.staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            # kubelet: ConfigMap files 0644 (defaultMode), group fsGroup; folders traversable.
            path.chmod(0o644)
            if self.plan.file_group is not None and os.geteuid() == 0:
                os.chown(path, 0, self.plan.file_group)
        for folder in [self.staging, *[p for p in self.staging.rglob("*") if p.is_dir()]]:
            folder.chmod(0o755)

    def start(self) -> None:
        self.remove()                        # a leftover of an interrupted run, same name
        self.stage_files()
        self.started_at = time.monotonic()
        docker(*self.plan.docker_run(self.staging)[1:], timeout=120)

    def remove(self) -> None:
        try:
            docker("rm", "--force", "--volumes", self.plan.container_name, timeout=60, check=False)
        except PodRunError:
            pass

    def state(self) -> dict[str, Any]:
        out = docker("inspect", "--format", "{{json .State}}", self.plan.container_name, timeout=30)
        return dict(json.loads(out.stdout))

    def logs(self, tail: int = 60) -> str:
        proc = docker("logs", "--tail", str(tail), self.plan.container_name, timeout=30, check=False)
        return proc.stdout + proc.stderr

    def all_logs(self) -> str:
        proc = docker("logs", self.plan.container_name, timeout=60, check=False)
        return proc.stdout + proc.stderr

    def exec(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.plan.container_name, *argv, timeout=timeout, check=False)

    def assert_running(self, during: str) -> None:
        state = self.state()
        if not state.get("Running"):
            raise PodRunError(f"the container exited (code {state.get('ExitCode')}, OOMKilled "
                              f"{state.get('OOMKilled')}) during {during}; the kubelet would restart it "
                              f"(CrashLoopBackOff). Last log lines:\n{self.logs()}")

    # -- probes -----------------------------------------------------------------------------------

    def probe_once(self, probe: pod_translate.Probe) -> tuple[bool, str]:
        if probe.kind == "exec":
            try:
                proc = self.exec(*probe.exec_command, timeout=probe.timeout)
            except subprocess.TimeoutExpired:
                return False, f"timed out after {probe.timeout}s"
            return proc.returncode == 0, (proc.stdout + proc.stderr).strip()[-300:]
        if probe.kind == "tcpSocket":
            try:
                with socket.create_connection(("127.0.0.1", probe.host_port), timeout=probe.timeout):
                    return True, "connected"
            except OSError as exc:
                return False, str(exc)
        request = urllib.request.Request(f"http://127.0.0.1:{probe.host_port}{probe.path}", headers=dict(probe.headers))
        try:
            with urllib.request.urlopen(request, timeout=probe.timeout) as answer:
                return 200 <= answer.status < 400, f"HTTP {answer.status}"
        except urllib.error.HTTPError as exc:
            return 200 <= exc.code < 400, f"HTTP {exc.code}"
        except (OSError, urllib.error.URLError) as exc:
            return False, str(exc)

    def run_probes_until_ready(self, report: Report) -> None:
        """The kubelet's order: startupProbe alone until it passes, then readiness and liveness on
        their own periods. Fails as the kubelet would act: startup or liveness failing
        failureThreshold times in a row kills the container."""
        probes = self.plan.probes
        runs = report.probe_runs

        def elapsed() -> float:
            return time.monotonic() - self.started_at

        def due_loop(kind: str, stop_when_passed: bool) -> float:
            p = probes[kind]
            failures = 0
            next_at = self.started_at + p.initial_delay
            while True:
                time.sleep(max(0.0, next_at - time.monotonic()))
                self.assert_running(kind)
                ok, detail = self.probe_once(p)
                runs[kind] = runs.get(kind, 0) + 1
                if ok and stop_when_passed:
                    return elapsed()
                failures = 0 if ok else failures + 1
                if failures >= p.failure_threshold:
                    raise PodRunError(f"{kind} failed {failures} times in a row ({detail}); the kubelet would "
                                      f"kill the container. Last log lines:\n{self.logs()}")
                next_at += p.period

        if "startupProbe" in probes:
            report.started_s = due_loop("startupProbe", stop_when_passed=True)
        else:
            report.started_s = 0.0
        # Readiness and liveness run side by side from here, each on its own period.
        schedule = {kind: max(time.monotonic(), self.started_at + probes[kind].initial_delay)
                    for kind in ("readinessProbe", "livenessProbe") if kind in probes}
        streak = {kind: 0 for kind in schedule}
        failures = {kind: 0 for kind in schedule}
        if not schedule:
            report.ready_s = elapsed()
            return
        while True:
            kind = min(schedule, key=lambda k: schedule[k])
            time.sleep(max(0.0, schedule[kind] - time.monotonic()))
            self.assert_running(kind)
            p = probes[kind]
            ok, detail = self.probe_once(p)
            runs[kind] = runs.get(kind, 0) + 1
            streak[kind] = streak[kind] + 1 if ok else 0
            failures[kind] = 0 if ok else failures[kind] + 1
            if kind == "livenessProbe" and failures[kind] >= p.failure_threshold:
                raise PodRunError(f"livenessProbe failed {failures[kind]} times ({detail}): the kubelet would "
                                  f"restart the container. Last log lines:\n{self.logs()}")
            if kind == "readinessProbe" and streak[kind] >= p.success_threshold and report.ready_s is None:
                report.ready_s = elapsed()
            if kind == "livenessProbe" and ok and report.live_s is None:
                report.live_s = elapsed()
            schedule[kind] += p.period
            # Done once the pod is Ready and liveness has answered at least once.
            if report.ready_s is not None and (report.live_s is not None or "livenessProbe" not in probes):
                return

    # -- what the server sees ----------------------------------------------------------------------

    def sandbox_facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        facts["id"] = self.exec("id").stdout.strip()
        mounts = self.exec("cat", "/proc/mounts").stdout.splitlines()
        for target in ("/tmp", "/app/logs", "/"):
            line = next((m for m in mounts if m.split()[1:2] == [target]), "")
            fstype, options = (line.split()[2:4] + ["", ""])[:2]
            # overlay's lowerdir/upperdir/workdir paths say nothing about the sandbox.
            kept = [o for o in options.split(",") if not o.startswith(("lowerdir=", "upperdir=", "workdir="))]
            facts[f"mount {target}"] = f"{fstype} {','.join(kept)}"
        facts["root read-only"] = self.exec("touch", "/app/.podrun-write-test").returncode != 0
        status = self.exec("cat", "/proc/1/status").stdout
        facts["NoNewPrivs"] = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("NoNewPrivs")), "?")
        facts["CapEff"] = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("CapEff")), "?")
        logs = self.all_logs()
        # TorchServe logs the Netty channel of each server; NIO means it fell back from epoll
        # (e.g. a noexec /tmp, where Netty's native library cannot be loaded from).
        facts["frontend channel"] = ("epoll" if "EpollServerSocketChannel" in logs
                                     else "nio" if "NioServerSocketChannel" in logs else "unknown")
        # The limits as the kernel enforces them (cgroup v2, else v1).
        v2 = self.exec("cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/cpu.max")
        if v2.returncode == 0:
            memory, cpu = v2.stdout.split("\n", 1)
            quota, period = cpu.split()
        else:
            memory = self.exec("cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout
            quota = self.exec("cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us").stdout
            period = self.exec("cat", "/sys/fs/cgroup/cpu/cpu.cfs_period_us").stdout
        facts["memory limit bytes"] = memory.strip()
        facts["cpu quota/period us"] = f"{quota.strip()}/{period.strip()}"
        facts["worker sockets"] = ("unix" if "--sock-type, unix" in logs
                                   else "tcp" if "--sock-type, tcp" in logs else "unknown")
        return facts

    # -- termination -------------------------------------------------------------------------------

    def run_pre_stop(self, budget: float) -> None:
        hook = self.plan.pre_stop
        if not hook:
            return
        if "sleep" in hook:
            time.sleep(min(float(hook["sleep"]["seconds"]), budget))
        elif "exec" in hook:
            try:
                self.exec(*hook["exec"]["command"], timeout=budget)
            except subprocess.TimeoutExpired:
                pass   # the kubelet, too, moves on to the stop signal when the grace period runs out
        elif "httpGet" in hook:
            port = self.plan.host_ports[str(hook["httpGet"]["port"])]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{hook['httpGet'].get('path', '/')}",
                                       timeout=budget).read()
            except (OSError, urllib.error.URLError):
                pass
        else:
            raise PodRunError(f"preStop {sorted(hook)} is not translated")

    def terminate_under_load(self, specs: list[ModelSpec], report: Report) -> None:
        inference = self.plan.host_ports["inference"]
        results: list[tuple[float, float, int | str]] = []
        lock = threading.Lock()
        stop_sending = threading.Event()

        def client(i: int) -> None:
            n = i
            while not stop_sending.is_set():
                spec = specs[n % len(specs)]
                n += 1
                began = time.monotonic()
                try:
                    outcome: int | str = predict(inference, spec, timeout=60)
                except OSError as exc:    # connection reset / refused: a lost request
                    outcome = type(exc).__name__
                with lock:
                    results.append((began, time.monotonic(), outcome))

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(DRAIN_CLIENTS)]
        for t in threads:
            t.start()
        # Let the clients reach a steady state before termination begins.
        deadline = time.monotonic() + 30
        while len(results) < 4 * DRAIN_CLIENTS and time.monotonic() < deadline:
            time.sleep(0.05)
        grace = self.plan.grace_seconds
        terminating = time.monotonic()
        # Endpoint removal: proxies keep sending for ENDPOINT_PROPAGATION_S, then stop.
        stopper = threading.Timer(ENDPOINT_PROPAGATION_S, stop_sending.set)
        stopper.start()
        self.run_pre_stop(budget=grace)
        # The stop signal follows the preStop at once, whether or not the proxies have caught up
        # (with a preStop shorter than the propagation window, clients are still sending).
        remaining = max(MIN_GRACE_AFTER_PRESTOP_S, round(grace - (time.monotonic() - terminating)))
        signalled = time.monotonic()
        docker("stop", "--time", str(remaining), self.plan.container_name, timeout=remaining + 60)
        exited_after = time.monotonic() - signalled
        stopper.join()
        for t in threads:
            t.join(timeout=65)
        state = self.state()
        in_flight = [r for r in results if r[0] < terminating < r[1]]
        during = [r for r in results if r[0] >= terminating]
        lost = [r for r in results if r[2] != 200]
        report.drain = {
            "requests": len(results),
            "in_flight_when_termination_began": len(in_flight),
            "in_flight_not_200": sum(1 for r in in_flight if r[2] != 200),
            "first_failure_after_s": round(min(r[1] for r in lost) - terminating, 2) if lost else None,
            "sent_during_propagation_window": len(during),
            "not_200": [(round(r[0] - terminating, 2), r[2]) for r in lost][:20],
            "pre_stop_s": round(signalled - terminating, 1),
            "grace_left_at_signal_s": remaining,
            "exit_after_signal_s": round(exited_after, 1),
            "exit_code": state.get("ExitCode"),
            "oom_killed": state.get("OOMKilled"),
        }
        if state.get("Running"):
            raise PodRunError("the container still runs after docker stop")
        if lost:
            raise PodRunError(f"{len(lost)} of {len(results)} requests lost during termination: {report.drain}")
        if not in_flight:
            raise PodRunError("no request was in flight when termination began: the drain was not tested")
        # docker stop waits `remaining` seconds before SIGKILL; an exit that took that long was a kill.
        if exited_after >= remaining:
            raise PodRunError(f"the server did not exit on its stop signal within the {remaining}s left of "
                              f"terminationGracePeriodSeconds: it was killed. {report.drain}")


# ------------------------------------------------------------------------------------------------
# The whole run

def render_docs(overlay: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(k8s.render(overlay)) if d]


def make_plan(overlay: str, drop_gpu: bool = False, container_name: str | None = None) -> pod_translate.PodPlan:
    docs = render_docs(overlay)
    container = pod_translate.find_deployment(docs, "torchserve")["spec"]["template"]["spec"]["containers"][0]
    host_ports = {p["containerPort"]: free_port() for p in container.get("ports") or []}
    return pod_translate.plan(docs, host_ports, drop_gpu=drop_gpu,
                              container_name=container_name or f"podrun-{overlay}-{os.getpid()}")


def run(overlay: str = "cpu", drop_gpu: bool = False, image: str | None = None,
        log: Any = None) -> Report:
    """The whole life of the pod; raises PodRunError at the first broken promise."""
    say = (lambda msg: print(msg, file=log, flush=True)) if log else (lambda msg: None)
    if not engine_answers():
        raise PodRunError("no Docker engine answers (`docker info` fails): start one (`make engine`, docker/README.md)")
    plan = make_plan(overlay, drop_gpu=drop_gpu)
    if image:
        plan.image = image
    if not image_present(plan.image):
        raise PodRunError(f"image {plan.image} is not on this engine: build it (`make build`, docker/README.md)")
    specs = load_specs()
    with tempfile.TemporaryDirectory(prefix="podrun-") as tmp, Pod(plan, Path(tmp)) as pod:
        report = Report(overlay=overlay, image=plan.image, docker_run=plan.docker_run(Path(tmp)), notes=plan.notes)
        say("$ " + " ".join(report.docker_run))
        for note in plan.notes:
            say(f"note: {note}")
        pod.start()
        pod.run_probes_until_ready(report)
        say(f"started {report.started_s:.1f}s, ready {report.ready_s:.1f}s, live {report.live_s}s after docker run "
            f"(probe runs {report.probe_runs})")
        report.sandbox = pod.sandbox_facts()
        say(f"sandbox: {report.sandbox}")
        report.answers = {s.name: predict(plan.host_ports["inference"], s) for s in specs}
        say(f"answers: {report.answers}")
        if any(code != 200 for code in report.answers.values()):
            raise PodRunError(f"not every model answered 200: {report.answers}\n{pod.logs()}")
        report.metrics = scraped_series(plan.host_ports["metrics"])
        say(f"metrics: {report.metrics}")
        say(f"terminating under load: preStop {plan.pre_stop}, terminationGracePeriodSeconds {plan.grace_seconds}")
        pod.terminate_under_load(specs, report)
        say(f"drain: {report.drain}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--overlay", default="cpu", choices=k8s.overlays())
    parser.add_argument("--drop-gpu", action="store_true",
                        help="run without the pod's nvidia.com/gpu request (a host without GPUs)")
    parser.add_argument("--image", help="run this image instead of the overlay's (same pod spec otherwise)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    try:
        report = run(args.overlay, drop_gpu=args.drop_gpu, image=args.image, log=sys.stdout)
    except (PodRunError, pod_translate.TranslationError, k8s.RenderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))
    print("ok: the pod started, became ready, served every model and drained on termination")
    return 0


if __name__ == "__main__":
    sys.exit(main())
