"""Live proof of the observability stack: real TorchServe, real Prometheus, real traffic.

Good and bad requests go to every model while the test polls Prometheus's HTTP API (deadlines,
no fixed waits) until:
  - every PromQL expression of the dashboard and of the rule files is accepted by the server;
  - every dashboard panel returns data, except GPU-only panels (listed and skipped: no GPU here);
  - the server's latency numbers agree in order of magnitude with what this client measured.
"""
from __future__ import annotations

import io
import json
import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import yaml
from PIL import Image, ImageDraw

from stackctl import paths

DASHBOARD = paths.CONFIG / "grafana" / "dashboards" / "torchserve.json"
RULES_DIR = paths.PROMETHEUS_CONFIG_DIR / "rules"
GPU_ONLY_MARK = "GPU-only"
# Grafana's built-in variables, replaced by what Grafana would send for a 30-minute view.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "30m"}


# --------------------------------------------------------------------------- expressions
@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref_id: str
    expr: str
    gpu_only: bool


def dashboard_queries() -> list[PanelQuery]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        gpu_only = panel.get("description", "").startswith(GPU_ONLY_MARK)
        for target in panel.get("targets", []):
            queries.append(PanelQuery(panel["title"], target["refId"], target["expr"], gpu_only))
    return queries


def rule_expressions() -> list[tuple[str, str]]:
    found = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found.append((rule.get("record") or rule["alert"], rule["expr"]))
    return found


def substitute(expr: str, models: list[str]) -> str:
    """What Grafana sends: $model becomes the selected models as a regex alternation."""
    expr = expr.replace("${model}", "$model").replace("$model", "|".join(models))
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr.replace("$1", ""), f"unsubstituted variable in {expr!r}"
    return expr


# --------------------------------------------------------------------------- Prometheus API
def instant_query(prom_url: str, expr: str) -> dict[str, Any]:
    response = requests.get(f"{prom_url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body.get("status") == "success", f"Prometheus rejected {expr!r}: {body.get('error')}"
    return body["data"]


def has_data(data: dict[str, Any]) -> bool:
    if data["resultType"] == "scalar":
        return True
    return any(_finite(sample) for sample in data["result"])


def _finite(sample: dict[str, Any]) -> bool:
    return sample["value"][1] not in ("NaN", "+Inf", "-Inf")


def poll(condition: Callable[[], Any], deadline_s: float, interval_s: float = 1.0) -> Any:
    """Return condition()'s first truthy value, or its last value once the deadline passed."""
    end = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value or time.monotonic() >= end:
            return value
        time.sleep(interval_s)


def model_values(prom_url: str, expr: str) -> dict[str, float]:
    return {s["metric"].get("model", ""): float(s["value"][1])
            for s in instant_query(prom_url, expr)["result"] if _finite(s)}


# --------------------------------------------------------------------------- traffic
def digit_png() -> bytes:
    image = Image.new("L", (28, 28), color=255)
    ImageDraw.Draw(image).line([(14, 4), (14, 24)], fill=0, width=3)  # a "1"
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


GOOD = {
    "digits": lambda: {"data": digit_png(), "headers": {"Content-Type": "image/png"}},
    "langid": lambda: {"json": {"text": "hello world"}},
    "langstream": lambda: {"json": {"text": "hello world"}},  # names no sequence: a whole text
}
BAD = [  # (model, request kwargs): each must come back 4xx
    ("digits", {"data": b"", "headers": {"Content-Type": "image/png"}}),
    ("digits", {"data": b"this is not an image", "headers": {"Content-Type": "image/png"}}),
    ("langid", {"data": b"", "headers": {"Content-Type": "application/json"}}),
]


@dataclass
class Traffic:
    inference_url: str
    latencies: dict[str, list[float]] = field(default_factory=dict)
    bad_statuses: list[int] = field(default_factory=list)
    good_statuses: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    failure: BaseException | None = None

    def send_round(self, session: requests.Session) -> None:
        for model, make in GOOD.items():
            started = time.perf_counter()
            response = session.post(f"{self.inference_url}/predictions/{model}", timeout=30, **make())
            self.latencies.setdefault(model, []).append(time.perf_counter() - started)
            self.good_statuses.append(response.status_code)
        for model, kwargs in BAD:
            self.bad_statuses.append(session.post(f"{self.inference_url}/predictions/{model}", timeout=30,
                                                  **kwargs).status_code)

    def run(self, min_rounds: int, pace_s: float) -> None:
        """min_rounds back to back, then a trickle until stopped, so 1m rates stay defined."""
        session = requests.Session()
        try:
            for _ in range(min_rounds):
                self.send_round(session)
            while not self.stop.wait(pace_s):
                self.send_round(session)
        except BaseException as exc:  # surfaced by the fixture instead of a silent dead thread
            self.failure = exc

    def rounds_done(self) -> int:
        if self.failure is not None:
            raise AssertionError(f"traffic thread failed: {self.failure!r}")
        return min((len(v) for v in self.latencies.values()), default=0)


@pytest.fixture(scope="module")
def traffic(torchserve, prometheus):
    live = Traffic(torchserve.inference_url)
    warmup = threading.Thread(target=live.run, kwargs={"min_rounds": 40, "pace_s": 0.2}, daemon=True)
    warmup.start()
    # The foreground rounds finish before the first assertions read the client latencies.
    assert poll(lambda: live.rounds_done() >= 40, deadline_s=60, interval_s=0.2), "traffic too slow"
    yield live
    live.stop.set()
    warmup.join(timeout=30)


@pytest.fixture(scope="module")
def models(torchserve) -> list[str]:
    listed = requests.get(f"{torchserve.management_url}/models", timeout=10).json()["models"]
    return sorted(m["modelName"] for m in listed)


@pytest.fixture(scope="module")
def scraped(traffic, prometheus, models) -> str:
    """Prometheus URL once it has scraped traffic for every model and evaluated our rules."""
    def ready() -> bool:
        requests_seen = model_values(prometheus.url, "model:ts_inference_requests:rate1m")
        quantiles = model_values(prometheus.url, 'model:handler_request_seconds:quantile1m{quantile="0.5"}')
        return all(requests_seen.get(m, 0) > 0 and m in quantiles for m in models)
    assert poll(ready, deadline_s=90), "Prometheus never recorded per-model request rates and quantiles"
    return prometheus.url


# --------------------------------------------------------------------------- tests
def test_traffic_got_the_expected_answers(traffic):
    assert set(traffic.good_statuses) == {200}
    assert traffic.bad_statuses and all(400 <= s < 500 for s in traffic.bad_statuses)


def test_our_rule_files_are_loaded(prometheus):
    groups = requests.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    expected = {name for name, _ in rule_expressions()}
    assert expected <= loaded, f"rules missing from Prometheus: {sorted(expected - loaded)}"


@pytest.mark.parametrize("name, expr", rule_expressions(), ids=[n for n, _ in rule_expressions()])
def test_rule_expression_is_accepted(prometheus, name, expr):
    instant_query(prometheus.url, expr)


def test_every_dashboard_expression_is_accepted(prometheus, models):
    for query in dashboard_queries():
        instant_query(prometheus.url, substitute(query.expr, models))


def test_every_panel_returns_data_except_gpu_only(scraped, models):
    queries = dashboard_queries()
    gpu_only = sorted({q.panel for q in queries if q.gpu_only})
    if gpu_only:
        print(f"skipped, GPU-only and no GPU on this host: {gpu_only}")

    def empty_panels() -> list[str]:
        return [f"{q.panel} [{q.ref_id}]: {q.expr}" for q in queries
                if not q.gpu_only and not has_data(instant_query(scraped, substitute(q.expr, models)))]
    # Stage and batch panels need a second scrape after traffic started; host gauges need one
    # system-metrics round (at start-up, then every metric_time_interval).
    missing: list[str] = []

    def every_panel_has_data() -> bool:
        missing[:] = empty_panels()
        return not missing
    poll(every_panel_has_data, deadline_s=60)
    assert not missing, "panels without data:\n" + "\n".join(missing)


def test_latency_agrees_with_the_client_in_order_of_magnitude(scraped, traffic, models):
    p50 = model_values(scraped, 'model:handler_request_seconds:quantile1m{quantile="0.5"}')
    p95 = model_values(scraped, 'model:handler_request_seconds:quantile1m{quantile="0.95"}')
    mean_e2e = model_values(scraped, "model:ts_inference_latency_seconds:mean1m")
    for model in models:
        client = traffic.latencies[model]
        client_p50 = statistics.median(client)
        client_p95 = statistics.quantiles(client, n=20)[18]
        client_mean = statistics.fmean(client)
        report = (f"{model}: client p50 {client_p50 * 1e3:.1f} ms p95 {client_p95 * 1e3:.1f} ms mean "
                  f"{client_mean * 1e3:.1f} ms; server worker p50 {p50[model] * 1e3:.1f} ms p95 "
                  f"{p95[model] * 1e3:.1f} ms, frontend mean {mean_e2e[model] * 1e3:.1f} ms")
        print(report)
        # The frontend's end-to-end mean covers all but the HTTP client: same order as the client.
        assert client_mean / 10 <= mean_e2e[model] <= client_mean * 1.5, report
        # The worker's time is one part of each request (it excludes maxBatchDelay and the hop), so
        # it is below the client's, by up to ~10-20x for a tiny model behind a 10 ms batch delay. The
        # bounds still catch a unit slip (ms or us exported as seconds); 1.5x covers the
        # interpolation within a histogram bucket (the first is 5 ms wide).
        for server, measured in ((p50[model], client_p50), (p95[model], client_p95)):
            assert measured / 100 <= server <= measured * 1.5, report


def test_dashboard_model_variable_lists_every_model(scraped, models):
    dashboard = json.loads(DASHBOARD.read_text())
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "model")
    metric, label = re.fullmatch(r"label_values\((\S+), (\w+)\)", variable["definition"]).groups()
    series = instant_query(scraped, metric)["result"]
    assert sorted({s["metric"][label] for s in series}) == models
