"""Bring your own model: spec files, and the load test, capacity search and bench take them in.

tests/byo_models.py writes two brought models outside the repository (a torchvision resnet18
state_dict and a torch.export program, random weights) with their specs, in a temporary copy of
config/models/. The .pt2 model's load inputs are a temporary folder of PNG files (`load.samples`);
resnet18's are generated from its spec. `python -m stackctl models` archives all four into a
temporary model store (STACK_SPECS_DIR / STACK_MODEL_STORE / MODEL_DATA, the variables a user would
set); a real TorchServe on free loopback ports serves them. Then a short open-loop load test, a
short capacity search and a `--quick` bench each must include both brought models with zero failed
requests. No file of the repository is edited.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bench.report import problems
from stackctl.catalog.specs import load_specs, workers_on_host
from stackctl.serve.native import NativeStack, Ports
from tests.byo_models import write_byo_models
from tests.imagegen import encode
from tests.native_server import serve_until_ready
from tests.tool_runs import LATENCY_ANY, rows, run

OWN = ("resnet18", "shapes")
BUILT_IN = tuple(spec.name for spec in load_specs())   # the repository's own specs, copied beside OWN
SAMPLES = 12


@pytest.fixture(scope="module")
def own_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment a user's shell would have: STACK_SPECS_DIR, STACK_MODEL_STORE, MODEL_DATA."""
    from PIL import Image

    root = tmp_path_factory.mktemp("own-model")
    models = write_byo_models(root)
    samples = root / "samples"
    samples.mkdir()
    for i in range(SAMPLES):
        picture = Image.new("RGB", (32 + 8 * i, 32 + 4 * i), (20 * i % 256, 80, 255 - 20 * i % 256))
        (samples / f"{i:02d}.png").write_bytes(encode(picture, "PNG"))
    spec_file = models.spec_dir / "shapes.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["load"] = {"weight": 1, "samples": str(samples)}
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = models.env()
    proc = run(["-m", "stackctl", "models"], timeout=600, env=env)
    assert proc.returncode == 0 and all((models.model_store / f"{n}.mar").is_file() for n in OWN), proc.stderr[-2000:]
    yield env


def test_quick_bench_includes_the_new_models(own_setup: dict[str, str], tmp_path: Path) -> None:
    """Before the served stack starts, so the bench's own servers have the cores to themselves."""
    proc = run(["-m", "bench.run", "--quick", "--workloads", *OWN, "--out", str(tmp_path)], timeout=600, env=own_setup)
    assert proc.returncode == 0
    results = json.loads((tmp_path / "latest.json").read_text())
    assert problems(results) == []
    workloads = results["rounds"][0]["workloads"]
    assert workloads["resnet18"]["kind"] == "compute"  # a torchvision architecture
    assert workloads["shapes"]["payloads"]["count"] == SAMPLES  # the sample files, not generated images
    for name in OWN:
        assert workloads[name]["spec"] == str(Path(own_setup["STACK_SPECS_DIR"]) / f"{name}.yaml")
        served = workloads[name]["served"]["saturation"]
        assert served["requests"] > 0 and served["failures"] == 0, (name, served)
    assert sorted(results["rounds"][0]["cold_start"]["models"]) == sorted(OWN)


@pytest.fixture(scope="module")
def own_stack(own_setup: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    """TorchServe serving the temporary store's four archives; always stopped."""
    specs = load_specs(Path(own_setup["STACK_SPECS_DIR"]))
    stack = NativeStack(run_dir=tmp_path_factory.mktemp("own-stack"), ports=Ports.free(),
                        model_store=Path(own_setup["STACK_MODEL_STORE"]))
    try:
        serve_until_ready(stack, {"STACK_WORKERS_PER_HOST": str(workers_on_host(specs))})
        yield stack
    finally:
        stack.stop_all()


def test_load_test_includes_the_new_model_without_failures(own_setup, own_stack, tmp_path):
    """`make loadtest` on the four models: 10 s open loop, 20% deliberately bad requests."""
    stages = tmp_path / "stages.json"
    # 3 req/s per user: 30 req/s are 10 users, enough for every model (five, each at least one user)
    stages.write_text(json.dumps([{"seconds": 10, "rps": 30}]))
    proc = run(["-m", "loadtest.run", "--host", own_stack.inference_url, "--shape", "arrival", "--user-rate", "3",
                "--bad-request-share", "0.2", "--slo-override", LATENCY_ANY, "--out", str(tmp_path)],
               timeout=150, env={**own_setup, "LOADTEST_STAGES": str(stages)})
    assert proc.returncode == 0
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    stats = {r["Name"]: r for r in rows(folder / "locust_stats.csv")}
    for name in [*OWN, *(f"{n} [bad]" for n in OWN)]:
        assert int(stats[name]["Request Count"]) > 0 and int(stats[name]["Failure Count"]) == 0, stats.get(name)
    verdicts = json.loads((folder / "locust_slo.json").read_text())
    assert {v["observed"]["model"] for v in verdicts} == {*BUILT_IN, *OWN}
    assert all(v["ok"] and v["observed"]["failures"] == 0 for v in verdicts)


def test_capacity_search_includes_the_new_model(own_setup, own_stack, tmp_path):
    """`make capacity` takes every spec. With 1 s steps on a shared 2-core host a model may find no
    passing rate (exit 1, "no capacity"): that is a measurement, not this test's subject, so only a
    crash fails here, and each brought model must have been measured without failed requests."""
    proc = run(["-m", "loadtest.capacity", "--host", own_stack.inference_url, "--metrics", "none",
                "--budget", "4", "--step-seconds", "1", "--warmup-seconds", "0.5", "--estimate-users", "4",
                "--slo-override", "*.p95_ms=2000,*.p99_ms=4000", "--out", str(tmp_path)], timeout=120, env=own_setup)
    assert proc.returncode in (0, 1)
    table = {r["model"]: r for r in rows(tmp_path / "capacity.csv")}
    assert sorted(table) == sorted([*BUILT_IN, *OWN])
    steps = [s for s in rows(tmp_path / "steps.csv") if s["model"] in OWN]
    assert {s["model"] for s in steps} == set(OWN)
    assert all(int(s["requests"]) > 0 and int(s["failures"]) == 0 for s in steps), steps
