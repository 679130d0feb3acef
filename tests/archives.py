"""The built archives, loaded in-process as a worker would load them (stackctl.catalog.inprocess)."""
from __future__ import annotations

import pytest

from stackctl.catalog.inprocess import InProcessModel
from stackctl.catalog.specs import get_spec


def in_process(name: str) -> InProcessModel:
    spec = get_spec(name)
    if not spec.archive_path.is_file():
        pytest.fail(f"model_store/{name}.mar missing: run `make models`", pytrace=False)
    return InProcessModel(spec.archive_path)
