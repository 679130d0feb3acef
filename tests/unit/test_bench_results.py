"""The committed benchmark results: well-formed, and each Markdown table is its JSON re-rendered."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report
from stackctl import paths

RESULTS = paths.ROOT / "bench" / "results"
RUNS = sorted(p for p in RESULTS.rglob("*.json") if "schema" in json.loads(p.read_text()))


def test_the_cpu_run_and_the_gpu_runs_are_committed() -> None:
    names = {p.relative_to(RESULTS).as_posix() for p in RUNS}
    assert "latest.json" in names
    assert any(n.startswith("gpu/") for n in names)


@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.relative_to(RESULTS).as_posix())
def test_committed_results_are_well_formed_and_their_table_has_not_drifted(run: Path) -> None:
    results = json.loads(run.read_text())
    assert report.problems(results) == []
    assert run.with_suffix(".md").read_text() == report.markdown(results), \
        f"re-render it: python -m bench.report {run.relative_to(paths.ROOT)}"


def test_cuda_options_results_name_their_device_and_every_precision() -> None:
    for path in RESULTS.rglob("*cuda-options.json"):
        result = json.loads(path.read_text())
        assert "H100" in result["device"] or "NVIDIA" in result["device"]
        assert set(result["precision"]) == {"fp32", "bf16", "fp16"}
        assert result["decode"]["nvjpeg_items_per_s"]
