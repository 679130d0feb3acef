"""Archives: rebuilt only when their inputs change; serving knobs never retrain."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import zipfile

import yaml

from handlers.sections import override, written
from stackctl import paths
from stackctl.catalog.archive import training_fingerprint
from stackctl.catalog.specs import get_spec, load_specs


def test_serving_knobs_do_not_change_the_training_fingerprint_but_preprocessing_does() -> None:
    spec = get_spec("digits")
    tuned = dataclasses.replace(spec, serving=override(spec.serving, batch_size=64, max_batch_delay=50),
                                handler=override(spec.handler, top_k=5, torch_threads=2))
    assert training_fingerprint(tuned) == training_fingerprint(spec)
    image = override(spec.handler.image, size=(16, 16))
    changed = dataclasses.replace(spec, handler=override(spec.handler, image=image))
    assert training_fingerprint(changed) != training_fingerprint(spec)


def test_make_models_with_nothing_changed_does_no_work() -> None:
    specs = load_specs()
    before = {s.name: s.archive_path.stat().st_mtime_ns for s in specs}
    result = subprocess.run([sys.executable, "-m", "stackctl", "models"], cwd=paths.ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for spec in specs:
        assert f"[{spec.name}] up to date" in result.stdout
        assert spec.archive_path.stat().st_mtime_ns == before[spec.name]


def test_archive_carries_the_spec_settings_and_the_held_out_accuracy() -> None:
    for spec in load_specs():
        with zipfile.ZipFile(spec.archive_path) as archive:
            names = set(archive.namelist())
            config = yaml.safe_load(archive.read("model-config.yaml"))
        assert {"handlers/base.py", "models/training.py", "labels.json", "MAR-INF/MANIFEST.json"} <= names
        for key, value in written(spec.serving).items():
            assert config[key] == value
        assert config["handler"]["top_k"] == spec.handler.top_k
        assert config["handler"]["training"]["held_out_accuracy"] > 0.5
