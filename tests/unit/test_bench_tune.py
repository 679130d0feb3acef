"""`make tune` writes its winner into the spec in place: values change, comments and layout stay."""
from __future__ import annotations

import pytest
import yaml

from bench.settings import parallelism_options
from stackctl.catalog.spec_edit import set_values

SPEC = """\
# header comment
name: digits
serving:
  minWorkers: 1
  maxWorkers: 1
  batchSize: 16
  maxBatchDelay: 5        # ms the frontend waits to fill a batch
  responseTimeout: 30     # s; a worker exceeding it is restarted

handler:
  top_k: 3
  torch_threads: auto     # auto = usable cores / workers
  image:
    size: [8, 8]
slo:
  p95_ms: 150
"""


def test_values_change_in_place_and_comments_stay() -> None:
    text = set_values(SPEC, "serving", {"batchSize": 8, "maxBatchDelay": 20, "maxWorkers": 2})
    assert "  maxBatchDelay: 20       # ms the frontend waits to fill a batch\n" in text
    assert "  batchSize: 8\n" in text and "  maxWorkers: 2\n" in text
    assert text.count("#") == SPEC.count("#")
    doc = yaml.safe_load(text)
    assert doc["serving"] == {"minWorkers": 1, "maxWorkers": 2, "batchSize": 8, "maxBatchDelay": 20,
                              "responseTimeout": 30}
    assert doc["slo"] == {"p95_ms": 150}


def test_only_direct_children_of_the_section_change() -> None:
    text = set_values(SPEC, "handler", {"torch_threads": 1, "size": 99})
    doc = yaml.safe_load(text)
    assert doc["handler"]["torch_threads"] == 1
    assert doc["handler"]["image"]["size"] == [8, 8]      # nested key of the same name untouched
    assert doc["handler"]["size"] == 99                   # a missing key is added to the section
    assert "# auto = usable cores / workers" in text


def test_unknown_section_is_an_error() -> None:
    with pytest.raises(ValueError):
        set_values(SPEC, "nothing", {"a": 1})


@pytest.mark.parametrize("cores", [1, 2, 4, 16])
def test_parallelism_never_oversubscribes(cores: int) -> None:
    options = parallelism_options(cores)
    assert (1, cores) in options
    assert all(w * t <= cores for w, t in options)
