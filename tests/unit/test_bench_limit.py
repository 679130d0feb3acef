"""The true limit: the cores split into processes x threads, copies measured in one shared window."""
from __future__ import annotations

from bench.limit import config_sweep, core_splits, parse_configs
from bench.workloads import workloads


def test_the_limit_tries_every_split_of_the_cores_and_torchserves_own() -> None:
    assert core_splits(2, workers=2, threads_per_worker=1) == [(1, 2), (2, 1)]
    # a bigger host: one process with every core, TorchServe's 4 workers x 4 threads; not 16 x 1
    assert core_splits(16, workers=4, threads_per_worker=4) == [(1, 16), (4, 4)]
    assert parse_configs("1x2,2x1") == ((1, 2), (2, 1))


def test_copies_run_at_once_and_their_rates_add_up() -> None:
    w = workloads(["digits"])[0]
    bodies = [(p.body, p.content_type) for p in w.payloads()[:16]]
    sweep = config_sweep(w.spec.archive_path, bodies, processes=2, threads=1, batch_sizes=(1, 4), seconds=0.3)
    assert [s["batch_size"] for s in sweep] == [1, 4]
    for step in sweep:
        assert len(step["per_process"]) == 2 and all(rate > 0 for rate in step["per_process"])
        assert abs(step["items_per_s"] - sum(step["per_process"])) < 0.1
