"""The HPA's metric, run for real: prometheus-adapter's rule (k8s/prometheus-adapter/values.yaml)
with its template filled in as the adapter fills it, queried over the HTTP API of a real Prometheus
that holds TorchServe's series labelled as the adapter sees them (namespace and pod added by the
ServiceMonitor's scrape, model_name/model_version from TorchServe).

The series are backfilled (`promtool tsdb create-blocks-from openmetrics`), so every rate is exact.
One pod serves a busy fast model next to a slow saturated one: the metric must be the slow model's
queue wait, which a request-weighted mean over the pod's models hides below the HPA's target.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from stackctl.serve import readiness
from stackctl.serve.native import free_port

ROOT = Path(__file__).resolve().parents[2]
ADAPTER_VALUES = ROOT / "k8s" / "prometheus-adapter" / "values.yaml"
HPA = ROOT / "k8s" / "components" / "autoscaling" / "torchserve-horizontalPodAutoscaler.yaml"
NAMESPACE = "torchserve"
STEP_S = 15
SAMPLES = 41          # 10 minutes of 15 s scrapes
# The rule this replaced: one request-weighted mean over every model of the pod.
OLD_MEAN_QUERY = (
    "sum by (<<.GroupBy>>) (rate(ts_queue_latency_microseconds{<<.LabelMatchers>>}[1m])) / 1000"
    " / clamp_min(sum by (<<.GroupBy>>) (rate(ts_inference_requests_total{<<.LabelMatchers>>}[1m])), 1e-9)")

# (namespace, pod, model_name, model_version): (requests per second, µs each waited in the queue)
TRAFFIC: dict[tuple[str, str, str, str], tuple[float, float]] = {
    # Pod a: a fast model at 1000 req/s waiting 1 ms, and a slow model saturated at 2 s of queue
    # wait (two versions: what clients send to /predictions/slow is labelled "default").
    (NAMESPACE, "torchserve-a", "fast", "default"): (1000.0, 1_000.0),
    (NAMESPACE, "torchserve-a", "slow", "default"): (1.5, 2_000_000.0),
    (NAMESPACE, "torchserve-a", "slow", "1.0"): (0.5, 2_000_000.0),
    # Pod b: only the fast model, 1 ms.
    (NAMESPACE, "torchserve-b", "fast", "default"): (100.0, 1_000.0),
    # Pod c: idle (counters that do not move): 0, not NaN, so the HPA can scale down.
    (NAMESPACE, "torchserve-c", "fast", "default"): (0.0, 0.0),
    # Another namespace's pod: the label matchers must keep it out.
    ("elsewhere", "torchserve-a", "slow", "default"): (5.0, 9_000_000.0),
}
EXPECTED_MS = {"torchserve-a": 2000.0, "torchserve-b": 1.0, "torchserve-c": 0.0}


def adapter_rule() -> dict[str, Any]:
    rules = yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["custom"]
    return next(r for r in rules if r["name"]["as"] == "torchserve_queue_latency_ms")


def fill(template: str, series: str, pods: list[str]) -> str:
    """What prometheus-adapter sends for `pods/*` in NAMESPACE (its <<.Field>> template)."""
    values = {"<<.Series>>": series, "<<.GroupBy>>": "pod",
              "<<.LabelMatchers>>": f'namespace="{NAMESPACE}",pod=~"{"|".join(pods)}"'}
    for name, value in values.items():
        template = template.replace(name, value)
    assert "<<" not in template, f"a template field the test does not fill: {template}"
    return template


def openmetrics(start_s: int) -> str:
    lines = []
    for family, per_request in (("ts_inference_requests_total", False), ("ts_queue_latency_microseconds", True)):
        for (namespace, pod, model, version), (rps, wait_us) in TRAFFIC.items():
            labels = (f'{{namespace="{namespace}",pod="{pod}",model_name="{model}",model_version="{version}",'
                      f'hostname="{pod}",job="torchserve",instance="10.0.0.1:8082"}}')
            for i in range(SAMPLES):
                requests_so_far = rps * i * STEP_S
                value = requests_so_far * wait_us if per_request else requests_so_far
                lines.append(f"{family}{labels} {value} {start_s + i * STEP_S}")
    return "\n".join(lines) + "\n# EOF\n"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is missing: install the Debian package prometheus (make system-deps)")
    return found


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, float]]:
    """(URL, time of the last sample) of a Prometheus holding the backfilled series."""
    home = tmp_path_factory.mktemp("hpa-prometheus")
    start = int(time.time()) - SAMPLES * STEP_S - 60
    (home / "series.om").write_text(openmetrics(start))
    made = subprocess.run([_tool("promtool"), "tsdb", "create-blocks-from", "openmetrics",
                           str(home / "series.om"), str(home / "data")], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr
    (home / "prometheus.yml").write_text("global: {}\n")
    port = free_port()
    proc = subprocess.Popen([_tool("prometheus"), f"--config.file={home / 'prometheus.yml'}",
                             f"--storage.tsdb.path={home / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                             "--storage.tsdb.retention.time=1d"],
                            stdout=subprocess.DEVNULL, stderr=(home / "prometheus.log").open("w"))
    try:
        url = f"http://127.0.0.1:{port}"
        readiness.wait_for_http(f"{url}/-/ready", 60, readiness.process_alive(proc))
        yield url, float(start + (SAMPLES - 1) * STEP_S)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def per_pod(prometheus: tuple[str, float], query: str) -> dict[str, float]:
    url, at = prometheus
    answer = requests.get(f"{url}/api/v1/query", params={"query": query, "time": at}, timeout=30).json()
    assert answer["status"] == "success", answer
    result = answer["data"]["result"]
    pods = [sample["metric"] for sample in result]
    assert all(set(labels) == {"pod"} for labels in pods), f"one series per pod, by pod only: {pods}"
    return {sample["metric"]["pod"]: float(sample["value"][1]) for sample in result}


def test_the_adapter_discovers_the_series_with_namespace_and_pod(prometheus):
    url, at = prometheus
    found = requests.get(f"{url}/api/v1/series", timeout=30,
                         params={"match[]": adapter_rule()["seriesQuery"], "start": at - 60, "end": at}).json()
    pods = {(s["namespace"], s["pod"]) for s in found["data"]}
    assert pods == {(ns, pod) for ns, pod, _, _ in TRAFFIC}


def test_the_metric_is_the_worst_models_queue_wait_per_pod(prometheus):
    query = fill(adapter_rule()["metricsQuery"], "ts_queue_latency_microseconds", sorted(EXPECTED_MS))
    got = per_pod(prometheus, query)
    assert set(got) == set(EXPECTED_MS), got
    for pod, expected in EXPECTED_MS.items():
        assert got[pod] == pytest.approx(expected, rel=1e-6, abs=1e-9), (pod, got)


def test_a_request_weighted_mean_would_hide_the_saturated_model(prometheus):
    """The data above tells the two queries apart: the old mean keeps pod a under the HPA's target
    (no scale-up while the slow model's requests wait 2 s); the worst-model metric is far above it."""
    hpa = yaml.safe_load(HPA.read_text())
    target = float(hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"])
    pods = sorted(EXPECTED_MS)
    mean = per_pod(prometheus, fill(OLD_MEAN_QUERY, "ts_queue_latency_microseconds", pods))
    worst = per_pod(prometheus, fill(adapter_rule()["metricsQuery"], "ts_queue_latency_microseconds", pods))
    assert mean["torchserve-a"] < target < worst["torchserve-a"], (mean, worst, target)
    assert mean["torchserve-a"] == pytest.approx((1000 * 1_000 + 2 * 2_000_000) / 1002 / 1000, rel=1e-6)
