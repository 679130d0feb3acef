"""Termination of the pod's container under client load, as a kubelet does it: clients keep sending
through the endpoint-propagation window, preStop runs, then the image's stop signal with what is
left of terminationGracePeriodSeconds (`docker stop -t`, SIGKILL after it). The drain report says
what happened to every request; any lost request, or an exit that needed the SIGKILL, fails."""
from __future__ import annotations

import subprocess
import threading
import time
import urllib.error
import urllib.request

from stackctl.catalog.specs import ModelSpec
from stackctl.pod.docker_cli import docker
from stackctl.pod.pod_container import Pod
from stackctl.pod.pod_report import PodRunError, Report
from stackctl.pod.pod_requests import predict

# The manifest's preStop assumes 5 s for endpoint removal to reach every proxy (its comment):
# clients keep sending this long after termination begins.
ENDPOINT_PROPAGATION_S = 5.0
DRAIN_CLIENTS = 8
# The kubelet's floor for what is left of the grace period after preStop.
MIN_GRACE_AFTER_PRESTOP_S = 2


def run_pre_stop(pod: Pod, budget: float) -> None:
    hook = pod.plan.pre_stop
    if not hook:
        return
    if "sleep" in hook:
        time.sleep(min(float(hook["sleep"]["seconds"]), budget))
    elif "exec" in hook:
        try:
            pod.exec(*hook["exec"]["command"], timeout=budget)
        except subprocess.TimeoutExpired:
            pass   # the kubelet, too, moves on to the stop signal when the grace period runs out
    elif "httpGet" in hook:
        port = pod.plan.host_ports[str(hook["httpGet"]["port"])]
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{hook['httpGet'].get('path', '/')}",
                                   timeout=budget).read()
        except (OSError, urllib.error.URLError):
            pass
    else:
        raise PodRunError(f"preStop {sorted(hook)} is not translated")


# (began, ended, outcome): monotonic times and the HTTP status, or the exception's name.
Result = tuple[float, float, int | str]


class Clients:
    """DRAIN_CLIENTS threads that send predictions round-robin over the models until stopped."""

    def __init__(self, inference_port: int, specs: list[ModelSpec]) -> None:
        self.results: list[Result] = []
        self.stop_sending = threading.Event()
        self._lock = threading.Lock()
        self._port, self._specs = inference_port, specs
        self._threads = [threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(DRAIN_CLIENTS)]
        for t in self._threads:
            t.start()

    def _send(self, i: int) -> None:
        n = i
        while not self.stop_sending.is_set():
            spec = self._specs[n % len(self._specs)]
            n += 1
            began = time.monotonic()
            try:
                outcome: int | str = predict(self._port, spec, timeout=60)
            except OSError as exc:    # connection reset / refused: a lost request
                outcome = type(exc).__name__
            with self._lock:
                self.results.append((began, time.monotonic(), outcome))

    def wait_for_steady_state(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.results) < 4 * DRAIN_CLIENTS and time.monotonic() < deadline:
            time.sleep(0.05)

    def join(self) -> None:
        for t in self._threads:
            t.join(timeout=65)


def terminate_under_load(pod: Pod, specs: list[ModelSpec], report: Report) -> None:
    clients = Clients(pod.plan.host_ports["inference"], specs)
    # Let the clients reach a steady state before termination begins.
    clients.wait_for_steady_state()
    grace = pod.plan.grace_seconds
    terminating = time.monotonic()
    # Endpoint removal: proxies keep sending for ENDPOINT_PROPAGATION_S, then stop.
    stopper = threading.Timer(ENDPOINT_PROPAGATION_S, clients.stop_sending.set)
    stopper.start()
    run_pre_stop(pod, budget=grace)
    # The stop signal follows the preStop at once, whether or not the proxies have caught up
    # (with a preStop shorter than the propagation window, clients are still sending).
    remaining = max(MIN_GRACE_AFTER_PRESTOP_S, round(grace - (time.monotonic() - terminating)))
    signalled = time.monotonic()
    docker("stop", "--time", str(remaining), pod.plan.container_name, timeout=remaining + 60)
    exited_after = time.monotonic() - signalled
    stopper.join()
    clients.join()
    state = pod.state()
    results = clients.results
    in_flight = [r for r in results if r[0] < terminating < r[1]]
    lost = [r for r in results if r[2] != 200]
    report.drain = {
        "requests": len(results),
        "in_flight_when_termination_began": len(in_flight),
        "in_flight_not_200": sum(1 for r in in_flight if r[2] != 200),
        "first_failure_after_s": round(min(r[1] for r in lost) - terminating, 2) if lost else None,
        "sent_during_propagation_window": sum(1 for r in results if r[0] >= terminating),
        "not_200": [(round(r[0] - terminating, 2), r[2]) for r in lost][:20],
        "pre_stop_s": round(signalled - terminating, 1),
        "grace_left_at_signal_s": remaining,
        "exit_after_signal_s": round(exited_after, 1),
        "exit_code": state.get("ExitCode"),
        "oom_killed": state.get("OOMKilled"),
    }
    judge_drain(report, running=bool(state.get("Running")), lost=len(lost), remaining=remaining,
                exited_after=exited_after)


def judge_drain(report: Report, running: bool, lost: int, remaining: int, exited_after: float) -> None:
    """Fail on a container still running, any lost request, a drain with nothing in flight, or an
    exit that needed the SIGKILL."""
    drain = report.drain
    if running:
        raise PodRunError("the container still runs after docker stop")
    if lost:
        raise PodRunError(f"{lost} of {drain['requests']} requests lost during termination: {drain}")
    if not drain["in_flight_when_termination_began"]:
        raise PodRunError("no request was in flight when termination began: the drain was not tested")
    # docker stop waits `remaining` seconds before SIGKILL; an exit that took that long was a kill.
    if exited_after >= remaining:
        raise PodRunError(f"the server did not exit on its stop signal within the {remaining}s left of "
                          f"terminationGracePeriodSeconds: it was killed. {drain}")
