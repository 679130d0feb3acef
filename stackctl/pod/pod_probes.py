"""The kubelet's probes on the pod's container: one probe (exec through `docker exec`, tcpSocket and
httpGet through the published port), and the startup -> readiness/liveness loop with the
manifest's initialDelaySeconds / periodSeconds / timeoutSeconds / failure and success thresholds."""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request

from stackctl.pod import pod_translate
from stackctl.pod.pod_container import Pod
from stackctl.pod.pod_report import PodRunError, Report


def probe_once(pod: Pod, probe: pod_translate.Probe) -> tuple[bool, str]:
    if probe.kind == "exec":
        try:
            proc = pod.exec(*probe.exec_command, timeout=probe.timeout)
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


def run_probes_until_ready(pod: Pod, report: Report) -> None:
    """The kubelet's order: startupProbe alone until it passes, then readiness and liveness on
    their own periods. Fails as the kubelet would act: startup or liveness failing
    failureThreshold times in a row kills the container."""
    probes = pod.plan.probes
    runs = report.probe_runs

    def elapsed() -> float:
        return time.monotonic() - pod.started_at

    def due_loop(kind: str, stop_when_passed: bool) -> float:
        p = probes[kind]
        failures = 0
        next_at = pod.started_at + p.initial_delay
        while True:
            time.sleep(max(0.0, next_at - time.monotonic()))
            pod.assert_running(kind)
            ok, detail = probe_once(pod, p)
            runs[kind] = runs.get(kind, 0) + 1
            if ok and stop_when_passed:
                return elapsed()
            failures = 0 if ok else failures + 1
            if failures >= p.failure_threshold:
                raise PodRunError(f"{kind} failed {failures} times in a row ({detail}); the kubelet would "
                                  f"kill the container. Last log lines:\n{pod.logs()}")
            next_at += p.period

    if "startupProbe" in probes:
        report.started_s = due_loop("startupProbe", stop_when_passed=True)
    else:
        report.started_s = 0.0
    # Readiness and liveness run side by side from here, each on its own period.
    schedule = {kind: max(time.monotonic(), pod.started_at + probes[kind].initial_delay)
                for kind in ("readinessProbe", "livenessProbe") if kind in probes}
    streak = {kind: 0 for kind in schedule}
    failures = {kind: 0 for kind in schedule}
    if not schedule:
        report.ready_s = elapsed()
        return
    while True:
        kind = min(schedule, key=lambda k: schedule[k])
        time.sleep(max(0.0, schedule[kind] - time.monotonic()))
        pod.assert_running(kind)
        p = probes[kind]
        ok, detail = probe_once(pod, p)
        runs[kind] = runs.get(kind, 0) + 1
        streak[kind] = streak[kind] + 1 if ok else 0
        failures[kind] = 0 if ok else failures[kind] + 1
        if kind == "livenessProbe" and failures[kind] >= p.failure_threshold:
            raise PodRunError(f"livenessProbe failed {failures[kind]} times ({detail}): the kubelet would "
                              f"restart the container. Last log lines:\n{pod.logs()}")
        if kind == "readinessProbe" and streak[kind] >= p.success_threshold and report.ready_s is None:
            report.ready_s = elapsed()
        if kind == "livenessProbe" and ok and report.live_s is None:
            report.live_s = elapsed()
        schedule[kind] += p.period
        # Done once the pod is Ready and liveness has answered at least once.
        if report.ready_s is not None and (report.live_s is not None or "livenessProbe" not in probes):
            return
