"""The chaos schedule: steady open-loop load on every model, the faults one after another on one
model (the others are the control), each followed by a watch for its recovery and a quiet spell.

Runs inside a Locust (gevent) process: the faults and polls below sleep cooperatively while the
load driver's users keep sending.
"""
from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import requests
from PIL import Image

from loadtest import users
from loadtest.chaos import compose, faults
from loadtest.chaos.faults import Fault
from loadtest.chaos.plan import Plan, Stage
from loadtest.chaos.record import Recorder, answer_key
from loadtest.chaos.recovery import is_ready, series_back, watch
from loadtest.driver import Driver
from loadtest.payloads import Payload, payloads_for
from stackctl.catalog.specs import ModelSpec, get_spec

DRAIN_RATE = 1e-9   # req/s per user: the next start is out of reach, so the users stop sending
MAX_OPEN_PER_USER = 256   # requests one user may have open at once (its connection pool)


@dataclass
class Hooks:
    """What the schedule needs of the stack under test."""
    management_url: str
    inference_url: str
    workers: int                                     # the faulted model's worker count
    server_pid: int                                  # TorchServe's (its workers are its descendants)
    prometheus: Callable[[], tuple[int | None, Callable[[], None]]] | None = None  # (pid, restart)
    prometheus_url: str = ""
    container: str = ""                              # the TorchServe container (--against-compose)
    log_dir: str = ""                                # TorchServe's log folder, on a tmpfs of its own


def reference_answers(inference_url: str, bodies: dict[str, Payload]) -> dict[str, tuple]:
    """Each body's answer before any fault: what every later 200 must repeat."""
    refs = {}
    for model, item in bodies.items():
        answer = requests.post(f"{inference_url}/predictions/{model}", data=item.body, timeout=60,
                               headers={"Content-Type": item.content_type})
        key = answer_key(answer.text) if answer.status_code == 200 else None
        if key is None:
            raise RuntimeError(f"{model}: no valid answer before the faults: {answer.status_code} {answer.text[:200]}")
        refs[model] = key
    return refs


def user_classes(specs: list[ModelSpec], bodies: dict[str, Payload], recorder: Recorder,
                 bounds: dict[str, int]) -> list[type]:
    """The load driver's user per model, sending one body and numbering its requests.

    Truly open loop: each request runs in a greenlet of its own, so a user keeps its schedule
    while earlier requests wait on a dead model (a Locust user otherwise holds one request at a
    time, and an outage would stop the load it is meant to measure). The client waits past the
    front door's bound, so an unanswered request is seen as such."""
    classes = []
    for spec in specs:
        base = users.make_user_class(spec, bodies=[bodies[spec.name]])

        def predict(self: Any, _send: Callable[[Any], None] = base.predict) -> None:
            gevent.spawn(_send, self)

        cls: Any = type(base.__name__, (base,), {
            "abstract": False, "network_timeout": bounds[spec.name] + 15.0, "concurrency": MAX_OPEN_PER_USER,
            "__module__": __name__, "context": (lambda name: lambda self: recorder.context(name))(spec.name)})
        cls.tasks = [predict]  # instead of the inherited blocking one (Locust would add, not replace)
        classes.append(cls)
    return classes


def _container_fault(name: str, plan: Plan, hooks: Hooks) -> Fault | None:
    container, management = hooks.container, hooks.management_url
    if name == "kill-once":
        return compose.kill_once(container, management, plan.model)
    if name == "kill-loop":
        return compose.kill_loop(container, management, plan.model, plan.loop_s, plan.loop_period_s)
    if name == "stop-continue":
        return compose.stop_continue(container, management, plan.model, plan.stop_s)
    if name == "worker-oom":
        return compose.worker_oom(container, management, plan.model, provoke=large_input(hooks.inference_url, plan.model))
    if name == "jvm-crash":
        return _lost_then_ended(compose.jvm_crash(container), management)
    if name == "container-kill":
        return compose.container_kill(container, policy_wait_s=20.0)
    return None


def large_input(inference_url: str, model: str) -> Callable[[], int] | None:
    """For an image model: a request with a valid image of 4,000 x 4,000 pixels (within the specs'
    max_pixels, a few kB of PNG), whose decoding needs tens of MB the worker does not hold yet.
    None for other models: their bodies are too small to need new memory."""
    if "image" not in get_spec(model).input_kinds:
        return None
    canvas = Image.new("L", (4000, 4000), 255)
    canvas.paste(0, (1800, 600, 2200, 3400))   # a "1", so the answer is an ordinary one
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    body = buffer.getvalue()

    def send() -> int:
        try:
            return requests.post(f"{inference_url}/predictions/{model}", data=body, timeout=60,
                                 headers={"Content-Type": "image/png"}).status_code
        except requests.RequestException:
            return 0   # no answer (the report's unanswered column counts the load's requests only)
    return send


def _lost_then_ended(fault: Fault, management_url: str, limit_s: float = 30.0) -> Fault:
    """A crash ends when readiness is lost (the dying server may answer for a moment): recovery
    counts from there, not from the signal."""
    while time.time() - fault.began < limit_s and is_ready(management_url):
        time.sleep(0.1)
    fault.ended = time.time()
    fault.whole_server = True
    return fault


def _fault(name: str, plan: Plan, hooks: Hooks) -> Fault | None:
    if hooks.container and name != "prometheus":   # Prometheus: the same kill and restart, its hooks differ
        fault = _container_fault(name, plan, hooks)
        if fault is not None and name == "container-kill":
            fault.whole_server = True
        return fault
    if name == "kill-once":
        return faults.kill_once(hooks.management_url, plan.model, hooks.server_pid)
    if name == "kill-loop":
        return faults.kill_loop(hooks.management_url, plan.model, hooks.server_pid, plan.loop_s, plan.loop_period_s)
    if name == "stop-continue":
        return faults.stop_continue(hooks.management_url, plan.model, plan.stop_s)
    if name == "log-disk-full" and hooks.log_dir:
        return faults.fill_disk(hooks.log_dir, plan.stop_s)
    if name == "prometheus" and hooks.prometheus is not None:
        pid, restart = hooks.prometheus()
        return faults.kill_and_restart("Prometheus", pid, restart, down_s=5.0)
    return None


def run(specs: list[ModelSpec], plan: Plan, hooks: Hooks, log: Callable[[str], None] = print) -> tuple[Recorder, list[Stage]]:
    bodies = {spec.name: payloads_for(spec).good[0] for spec in specs}
    recorder = Recorder(reference_answers(hooks.inference_url, bodies))
    stages: list[Stage] = []
    classes = user_classes(specs, bodies, recorder, plan.bounds)
    with Driver(classes, hooks.inference_url) as driver:
        driver.env.events.request.add_listener(recorder.on_request)
        driver.open(plan.rates)
        for name in plan.scenarios:
            began = time.time()
            time.sleep(plan.settle_s)
            log(f"chaos: {name} on {plan.model}")
            fault = _fault(name, plan, hooks)
            if fault is None:
                log(f"chaos: {name}: not available here, skipped")
                continue
            recovery = watch(hooks.management_url, fault, hooks.workers, plan.recover_limit_s)
            if name == "prometheus" or fault.whole_server:
                recovery.series_s = series_back(hooks.prometheus_url, plan.rates, fault.ended, plan.recover_limit_s)
            log(f"chaos: {name}: {fault.describe()}; workers READY after {recovery.workers_ready_s} s, "
                f"readiness after {recovery.readiness_s} s")
            time.sleep(plan.settle_s)
            stages.append(Stage(fault, (began, time.time()), recovery))
        _drain(driver, recorder, max(plan.bounds.values()) + 10.0)
    return recorder, stages


def _drain(driver: Driver, recorder: Recorder, limit_s: float) -> None:
    """Stop sending, then wait for the answers still owed (at most a bound)."""
    for cls in driver.classes.values():
        cls.user_rate = DRAIN_RATE
    # A user asleep on its old schedule sends once more when it wakes (within 1/user rate <= 2 s,
    # pacing.per_user_rate), then waits on the new one: only then is "nothing in flight" final.
    time.sleep(2.5)
    deadline = time.time() + limit_s
    while recorder.in_flight() > 0 and time.time() < deadline:
        time.sleep(0.2)
