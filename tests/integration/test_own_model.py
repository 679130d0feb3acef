"""Bring your own model: one more spec file, and the load test, capacity search and bench take it in.

A temporary spec folder holds config/models/ plus `digits2`: a user's spec with no `train:` key,
pointing at the digits weights and labels already built (build/models/digits/), its load inputs a
temporary folder of PNG files (`load.samples`). `python -m stackctl models digits2` archives it
into a temporary model store (STACK_SPECS_DIR / STACK_MODEL_STORE, the variables a user would set),
next to copies of the two built archives; a real TorchServe on free loopback ports serves the
three. Then a short open-loop load test, a short capacity search and a `--quick` bench each must
include digits2 with zero failed requests. No file of the repository is edited.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bench.report import problems
from stackctl import paths
from stackctl.native import NativeStack, Ports
from stackctl.specs import get_spec, load_specs, workers_on_host
from tests.imagegen import digit_image, encode, held_out
from tests.native_server import serve_until_ready
from tests.tool_runs import LATENCY_ANY, rows, run

OWN = "digits2"
SAMPLES = 12


@pytest.fixture(scope="module")
def own_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment a user's shell would have: STACK_SPECS_DIR and STACK_MODEL_STORE."""
    digits = get_spec("digits")
    built = [digits.weights_path, digits.labels_path, digits.archive_path, get_spec("langid").archive_path]
    missing = [str(p) for p in built if not p.is_file()]
    if missing:
        pytest.fail(f"missing {missing}: run `make models` first", pytrace=False)
    root = tmp_path_factory.mktemp("own-model")
    samples = root / "samples"
    samples.mkdir()
    for i, (image, label) in enumerate(held_out(SAMPLES)):
        (samples / f"{i:02d}-digit-{label}.png").write_bytes(encode(digit_image(image, 28 + 4 * i, "L", i % 2 == 1), "PNG"))
    specs = root / "models"
    shutil.copytree(paths.SPECS, specs)
    own = yaml.safe_load(digits.source.read_text())
    own.update(name=OWN, description="a user's model: the digits weights under another name")
    own["model"] = {"handler": "handlers/image_classifier.py", "architecture": own["model"]["architecture"],
                    "weights": str(digits.weights_path.relative_to(paths.ROOT)),
                    "labels": str(digits.labels_path.relative_to(paths.ROOT))}
    own["serving"].update(minWorkers=1, maxWorkers=1)
    own["load"] = {"weight": 1, "samples": str(samples)}
    (specs / f"{OWN}.yaml").write_text(yaml.safe_dump(own, sort_keys=False))
    store = root / "model_store"  # config.properties only allows archives from a "model_store" path
    store.mkdir()
    for spec in ("digits", "langid"):
        shutil.copy2(get_spec(spec).archive_path, store)
    env = {"STACK_SPECS_DIR": str(specs), "STACK_MODEL_STORE": str(store)}
    # Archiving stages its files in build/models/digits2/ (the build folder is not movable): remove
    # it afterwards unless it was there before.
    stage = paths.MODEL_BUILD / OWN
    existed = stage.exists()
    try:
        proc = run(["-m", "stackctl", "models", OWN], timeout=180, env=env)
        assert proc.returncode == 0 and (store / f"{OWN}.mar").is_file(), proc.stderr[-2000:]
        yield env
    finally:
        if not existed:
            shutil.rmtree(stage, ignore_errors=True)


def test_quick_bench_includes_the_new_model(own_setup: dict[str, str], tmp_path: Path) -> None:
    """Before the served stack starts, so the bench's own servers have the cores to themselves."""
    proc = run(["-m", "bench.run", "--quick", "--workloads", OWN, "--out", str(tmp_path)], timeout=300, env=own_setup)
    assert proc.returncode == 0
    results = json.loads((tmp_path / "latest.json").read_text())
    assert problems(results) == []
    own = results["rounds"][0]["workloads"][OWN]
    assert own["kind"] == "overhead" and own["spec"] == str(Path(own_setup["STACK_SPECS_DIR"]) / f"{OWN}.yaml")
    assert own["payloads"]["count"] == SAMPLES  # the sample files, not generated images
    assert own["served"]["saturation"]["requests"] > 0 and own["served"]["saturation"]["failures"] == 0
    assert results["rounds"][0]["cold_start"]["models"] == [OWN]


@pytest.fixture(scope="module")
def own_stack(own_setup: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    """TorchServe serving the temporary store's three archives; always stopped."""
    specs = load_specs(Path(own_setup["STACK_SPECS_DIR"]))
    stack = NativeStack(run_dir=tmp_path_factory.mktemp("own-stack"), ports=Ports.free(),
                        model_store=Path(own_setup["STACK_MODEL_STORE"]))
    try:
        serve_until_ready(stack, {"STACK_WORKERS_PER_HOST": str(workers_on_host(specs))})
        yield stack
    finally:
        stack.stop_all()


def test_load_test_includes_the_new_model_without_failures(own_setup, own_stack, tmp_path):
    """`make loadtest` on the three models: 10 s open loop, 20% deliberately bad requests."""
    stages = tmp_path / "stages.json"
    stages.write_text(json.dumps([{"seconds": 10, "rps": 12}]))
    proc = run(["-m", "loadtest.run", "--host", own_stack.inference_url, "--shape", "arrival", "--user-rate", "3",
                "--bad-request-share", "0.2", "--slo-override", LATENCY_ANY, "--out", str(tmp_path)],
               timeout=150, env={**own_setup, "LOADTEST_STAGES": str(stages)})
    assert proc.returncode == 0
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    stats = {r["Name"]: r for r in rows(folder / "locust_stats.csv")}
    for name in (OWN, f"{OWN} [bad]"):
        assert int(stats[name]["Request Count"]) > 0 and int(stats[name]["Failure Count"]) == 0, stats.get(name)
    verdicts = json.loads((folder / "locust_slo.json").read_text())
    assert {v["observed"]["model"] for v in verdicts} == {"digits", "langid", OWN}
    assert all(v["ok"] and v["observed"]["failures"] == 0 for v in verdicts)


def test_capacity_search_includes_the_new_model(own_setup, own_stack, tmp_path):
    """`make capacity` takes every spec; a short budget, so only the shape of the result is asserted."""
    proc = run(["-m", "loadtest.capacity", "--host", own_stack.inference_url, "--metrics", "none",
                "--budget", "4", "--step-seconds", "1", "--warmup-seconds", "0.5", "--estimate-users", "4",
                "--slo-override", "*.p95_ms=2000,*.p99_ms=4000", "--out", str(tmp_path)], timeout=120, env=own_setup)
    assert proc.returncode == 0
    table = {r["model"]: r for r in rows(tmp_path / "capacity.csv")}
    assert sorted(table) == ["digits", OWN, "langid"]
    assert float(table[OWN]["capacity_rps"]) > 0
    assert all(int(s["failures"]) == 0 for s in rows(tmp_path / "steps.csv") if s["model"] == OWN)
