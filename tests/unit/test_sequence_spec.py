"""A spec's `sequence:` section: validated, and rendered into TorchServe 0.12's sequence keys."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from handlers.settings import HandlerSettings, ServingSettings
from stackctl import paths
from stackctl.catalog.specs import SpecError, get_spec, load_spec


def test_the_sequence_section_becomes_torchserves_keys_and_the_handlers() -> None:
    spec = get_spec("langstream")
    assert spec.sequence is not None
    config = spec.model_config()
    workers = spec.serving.workers
    assert config["sequenceBatching"] is True and config["continuousBatching"] is True
    assert config["sequenceMaxIdleMSec"] == spec.sequence.idle_ms
    assert config["maxNumSequence"] == 2 * spec.sequence.max_live_per_worker * workers
    assert config["maxSequenceJobQueueSize"] == spec.sequence.queue_per_sequence
    # The archive's copy reads back: TorchServe's keys as serving settings, ours under handler:.
    assert ServingSettings.from_config(config).sequence_batching
    assert HandlerSettings.from_config(config["handler"]).sequence == spec.sequence


def test_a_stateless_spec_gets_no_sequence_keys() -> None:
    assert "sequenceBatching" not in get_spec("langid").model_config()


def test_a_bound_at_or_above_batch_size_is_refused(tmp_path: Path) -> None:
    doc = yaml.safe_load((paths.SPECS / "langstream.yaml").read_text())
    doc["sequence"]["max_live_per_worker"] = doc["serving"]["batchSize"]
    path = tmp_path / "langstream.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError, match="max_live_per_worker: must be below serving.batchSize"):
        load_spec(path)


def test_an_unknown_sequence_key_is_refused_by_the_schema(tmp_path: Path) -> None:
    doc = yaml.safe_load((paths.SPECS / "langstream.yaml").read_text())
    doc["sequence"]["max_streams"] = 3
    path = tmp_path / "langstream.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError, match="sequence"):
        load_spec(path)
