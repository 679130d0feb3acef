from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stackctl.specs import SpecError, load_spec, load_specs


def test_shipped_specs_load_and_name_the_contract_models() -> None:
    specs = {s.name: s for s in load_specs()}
    assert {"digits", "langid"} <= set(specs)
    for spec in specs.values():
        assert spec.slo.p95_ms < spec.slo.p99_ms
        assert 0 <= spec.slo.max_error_ratio < 1
        config = spec.model_config()
        assert config["batchSize"] >= 1 and config["handler"]["top_k"] == 3
        assert config["handler"]["architecture"] == spec.architecture


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / f"{doc.get('name', 'x')}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_spec_errors_name_the_problem(tmp_path: Path) -> None:
    good = yaml.safe_load(Path("config/models/digits.yaml").read_text())
    bad = dict(good, serving={**good["serving"], "batchsize": 4})
    with pytest.raises(SpecError, match="unknown TorchServe serving keys"):
        load_spec(_write(tmp_path, bad))
    bad = dict(good, serving={**good["serving"], "maxBatchDelay": 0})
    with pytest.raises(SpecError, match="maxBatchDelay must be a whole number >= 1, got 0 .*100 ms default"):
        load_spec(_write(tmp_path, bad))
    bad = dict(good, serving={**good["serving"], "batchSize": "8"})
    with pytest.raises(SpecError, match="batchSize must be a whole number >= 1, got '8'"):
        load_spec(_write(tmp_path, bad))
    bad = {k: v for k, v in good.items() if k != "slo"}
    with pytest.raises(SpecError, match="missing key 'slo'"):
        load_spec(_write(tmp_path, bad))
    renamed = dict(good, name="other")
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(renamed))
    with pytest.raises(SpecError, match="file name"):
        load_spec(path)
