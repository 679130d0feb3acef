"""Where things live in the repository. One place, so that nothing hard-codes a path twice."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
# Tests (and users with specs elsewhere) point these at other folders; TorchServe only loads
# archives from a folder whose path contains "model_store" (config.properties' allowed_urls).
SPECS = Path(os.environ.get("STACK_SPECS_DIR", CONFIG / "models"))
SERVER_CONFIG = CONFIG / "config.properties"
METRICS_CONFIG = CONFIG / "metrics.yaml"
PROMETHEUS_CONFIG_DIR = CONFIG / "prometheus"
BUILD = ROOT / "build"
MODEL_BUILD = BUILD / "models"
MODEL_STORE = Path(os.environ.get("STACK_MODEL_STORE", ROOT / "model_store"))
# State of the native stack (pids, logs, Prometheus data); tests point it elsewhere.
RUN = Path(os.environ.get("STACK_RUN_DIR", ROOT / "run"))


def shown(path: Path) -> Path:
    """`path` as messages and records show it: relative to the repository when inside it, absolute
    otherwise (a spec folder or model store moved by STACK_SPECS_DIR / STACK_MODEL_STORE)."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def model_data() -> Path:
    """Where relative `weights`, `labels` and `extra_files` of a spec without `train:` are found:
    $MODEL_DATA (a data folder outside the repository), else the repository root. Read at call
    time, so `make models MODEL_DATA=/data/models` and tests need no re-import."""
    return Path(os.environ.get("MODEL_DATA") or ROOT)
