"""In-process models for the unit tests: each archive's own handler, run as a worker would,
without a server. Module scope: a test module that changes a handler's settings cannot leak them
into another module."""
from __future__ import annotations

import pytest

from stackctl.catalog.inprocess import InProcessModel
from tests.archives import in_process


@pytest.fixture(scope="module")
def digits() -> InProcessModel:
    return in_process("digits")


@pytest.fixture(scope="module")
def langid() -> InProcessModel:
    return in_process("langid")
