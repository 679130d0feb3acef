"""Static checks of config/prometheus/ and config/grafana/ with the real tools.

promtool validates the server config, every rule file and the alert unit tests
(config/prometheus/tests/*.test.yml); the generated per-model rules must match the model specs;
the rest holds the files to the conventions the issue sets (for:, severity, rate() on counters,
relative paths, GPU-only panels marked) and to docs/metrics.md. Live behaviour is proven in
tests/integration/test_observability.py.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stackctl import paths
from stackctl.catalog.specs import load_specs
from stackctl.deploy import rules

PROM_DIR = paths.PROMETHEUS_CONFIG_DIR
RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
UNIT_TESTS = sorted((PROM_DIR / "tests").glob("*.test.yml"))
GRAFANA_DIR = paths.CONFIG / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "torchserve.json"
METRICS_DOC = paths.ROOT / "docs" / "metrics.md"
SEVERITIES = {"critical", "warning"}
# Counters as TorchServe 0.12 exports them (no `_total` suffix is added to Requests2XX etc.) and
# histogram parts: only ever read through rate()/increase(), never as raw values.
COUNTER = re.compile(r"\b(\w+_total|\w+_microseconds|Requests[245]XX|\w+_bucket|\w+_sum|\w+_count)\b(?!:)")
RECORDED = re.compile(r"\b[a-z_]+:[A-Za-z0-9_]+:[A-Za-z0-9_]+\b")
GPU_METRIC = re.compile(r"\b(GPU\w+|DCGM_\w+)\b")


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is missing: install the Debian package prometheus (make system-deps)")
    return subprocess.run([found, *map(str, args)], capture_output=True, text=True, timeout=120)


def all_rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in all_rules() if "alert" in rule]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


# --------------------------------------------------------------------------- promtool
def test_promtool_check_config():
    result = promtool("check", "config", PROM_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path):
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests():
    assert UNIT_TESTS, "no promtool unit tests under config/prometheus/tests/"
    result = promtool("test", "rules", *UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- generated rules
def test_generated_rules_match_the_model_specs():
    expected = rules.render(load_specs())
    assert rules.OUTPUT.read_text() == expected, "models.generated.yml is stale: run `make rules`"


def test_generated_rules_cover_every_model_and_its_slo():
    text = rules.OUTPUT.read_text()
    for spec in load_specs():
        assert f'model:request_latency_seconds:p95_5m{{model="{spec.name}"}} > {spec.slo.p95_ms / 1000:g}' in text
        assert f'model:inference_5xx:ratio_rate5m{{model="{spec.name}"}} > {spec.slo.max_error_ratio:g}' in text


def test_brought_models_get_alerts_once_whatever_their_versions(tmp_path: Path):
    """A brought model's spec gets its alerts like any other; a second version (<name>@<v>.yaml)
    adds none: the alerts are per model, and its series are summed over versions."""
    from tests import byo_models

    shutil.copytree(paths.CONFIG / "models", tmp_path, dirs_exist_ok=True)
    byo_models.write_spec(tmp_path, byo_models.resnet18_spec())
    byo_models.write_spec(tmp_path, byo_models.pt2_spec())
    byo_models.write_spec(tmp_path, dict(byo_models.pt2_spec(), version="2.0"), "shapes@2.0.yaml")
    groups = yaml.safe_load(rules.render(load_specs(tmp_path)))["groups"]
    assert [g["name"] for g in groups] == ["model-digits", "model-langid", "model-langstream", "model-resnet18", "model-shapes"]
    alerts = [r["alert"] + r["labels"]["model"] for g in groups for r in g["rules"]]
    assert len(alerts) == len(set(alerts))


def test_generator_check_mode_detects_drift(tmp_path: Path):
    stale = tmp_path / "models.generated.yml"
    stale.write_text("groups: []\n")
    assert rules.main(["--check", "--output", str(stale)]) == 1
    assert rules.main(["--output", str(stale)]) == 0
    assert rules.main(["--check", "--output", str(stale)]) == 0


# --------------------------------------------------------------------------- alert conventions
@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_alert_has_for_severity_and_instructions(alert: dict[str, Any]):
    assert alert.get("for"), "every alert needs a `for:`"
    assert alert.get("labels", {}).get("severity") in SEVERITIES
    annotations = alert.get("annotations", {})
    assert annotations.get("summary") and annotations.get("description")


def test_every_alert_is_unit_tested_firing_and_silent():
    fired, silent = set(), set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - fired == set(), "alerts never shown to fire"
    assert names - silent == set(), "alerts never shown to stay silent"


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.get("record") or r["alert"])
def test_counters_are_read_through_rate(rule: dict[str, Any]):
    for match in COUNTER.finditer(rule["expr"]):
        before = rule["expr"][:match.start()]
        assert re.search(r"\b(rate|increase)\(\s*$", before), (
            f"{match.group(1)} is used without rate()/increase() in {rule['expr']!r}")


def test_recorded_series_used_anywhere_are_defined():
    defined = {r["record"] for r in all_rules() if "record" in r}
    used = set()
    for rule in all_rules():
        used |= set(RECORDED.findall(rule["expr"]))
    for panel in panels():
        for target in panel["targets"]:
            used |= set(RECORDED.findall(target["expr"]))
    assert used - defined == set()


# --------------------------------------------------------------------------- prometheus.yml
def test_prometheus_paths_are_relative_and_targets_name_the_compose_services():
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == ["rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    expected = {"torchserve": ("targets/torchserve.json", "torchserve:8082"),
                "dcgm": ("targets/dcgm.json", "dcgm-exporter:9400")}
    for job, (target_file, host) in expected.items():
        files = [f for sd in jobs[job]["file_sd_configs"] for f in sd["files"]]
        assert files == [target_file]
        groups = json.loads((PROM_DIR / target_file).read_text())
        assert [t for g in groups for t in g["targets"]] == [host]
    interval = config["global"]["scrape_interval"]
    assert re.fullmatch(r"[1-9]s|1[0-5]s", interval), "scrape every few seconds"


# --------------------------------------------------------------------------- grafana
def test_grafana_provisioning_points_at_the_dashboard_folder():
    datasources = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert [d["type"] for d in datasources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "torchserve.yml").read_text())
    assert [p["options"]["path"] for p in providers["providers"]] == ["/var/lib/grafana/dashboards"]
    assert sorted(p.name for p in (GRAFANA_DIR / "dashboards").glob("*.json")) == ["torchserve.json"]


def test_dashboard_structure():
    board = dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["model"]["includeAll"] and variables["model"]["multi"]
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert panel.get("description"), f"{panel['title']}: say what the panel shows"


def test_gpu_only_panels_are_exactly_those_reading_gpu_series():
    for panel in panels():
        reads_gpu = any(GPU_METRIC.search(t["expr"]) for t in panel["targets"])
        marked = panel["description"].startswith("GPU-only")
        assert reads_gpu == marked, f"{panel['title']}: GPU-only mark and GPU series disagree"


def test_the_model_variable_lists_whatever_models_are_served():
    """No model names in the dashboard: the variable asks Prometheus, so a brought model appears
    with its first worker, and its versions under one name (the recording rules sum them)."""
    dashboard = json.loads(DASHBOARD.read_text())
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "model")
    assert variable["type"] == "query" and variable["includeAll"] is True
    assert variable["query"]["query"] == "label_values(model:torchserve_workers_loaded:count, model)"
    assert not re.search(r"\b(digits|langid)\b", DASHBOARD.read_text())


def test_per_model_panels_honour_the_model_variable():
    for panel in panels():
        for target in panel["targets"]:
            if re.search(r"\bmodel[_a-z]*:", target["expr"]):
                assert 'model=~"$model"' in target["expr"], f"{panel['title']}: {target['expr']}"


# --------------------------------------------------------------------------- docs
def test_metrics_doc_lists_every_declared_series():
    declared = yaml.safe_load(paths.METRICS_CONFIG.read_text())
    names = {m["name"] for section in ("ts_metrics", "model_metrics")
             for kind in declared[section].values() for m in kind}
    doc = METRICS_DOC.read_text()
    missing = sorted(n for n in names if f"`{n}" not in doc)
    assert not missing, f"docs/metrics.md does not describe {missing}"


def test_handler_series_read_by_rules_and_dashboard_are_declared():
    declared = yaml.safe_load(paths.METRICS_CONFIG.read_text())
    model_metrics = {m["name"] for kind in declared["model_metrics"].values() for m in kind}
    exprs = [r["expr"] for r in all_rules()] + [t["expr"] for p in panels() for t in p["targets"]]
    used = {re.sub(r"_(bucket|sum|count)$", "", name)
            for expr in exprs for name in re.findall(r"(?<![:\w])(handler_\w+)(?![:\w])", expr)}
    assert used - model_metrics == set(), "declare these in config/metrics.yaml model_metrics"
