"""A batch whose forward pass raises, on a real TorchServe: each of its items gets our 500 JSON,
items rejected on their own keep their 4xx, the failure is logged with the request ids and
counted, and the same worker answers the next request.

The model is a tiny archive built here (stackctl.catalog.archive, the digits handler and settings) whose
forward raises on a legitimate input, a blank image, so no production code has a test switch.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import requests
import torch

from handlers.sections import override
from handlers.settings import ServingSettings
from stackctl.catalog.archive import write_archive
from stackctl.catalog.specs import get_spec
from stackctl.serve.native import NativeStack, Ports
from tests.hostile import digit, tiny_png

FAULTY_MODEL = '''
import torch


class BlankRefusingNet(torch.nn.Module):
    """Digits-shaped classifier whose forward raises when any image of the batch is blank."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.linear = torch.nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        if bool((flat.abs().sum(dim=1) == 0).any()):
            raise RuntimeError("blank image in batch")
        return self.linear(flat)
'''
LABELS = {str(i): str(i) for i in range(10)}


@pytest.fixture(scope="module")
def faulty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    work = tmp_path_factory.mktemp("faulty")
    (work / "faulty_model.py").write_text(FAULTY_MODEL)
    (work / "labels.json").write_text(json.dumps(LABELS))
    import importlib.util
    module_spec = importlib.util.spec_from_file_location("faulty_model", work / "faulty_model.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    torch.save(module.BlankRefusingNet(10).state_dict(), work / "weights.pt")
    digits = get_spec("digits")
    # Batches of up to 8 with a long delay, so concurrent requests share one forward pass.
    spec = replace(digits, name="faulty", architecture="faulty_model:BlankRefusingNet", arguments={},
                   train_module=None, weights=work / "weights.pt", labels=work / "labels.json",
                   serving=ServingSettings.from_config({"minWorkers": 1, "maxWorkers": 1, "batchSize": 8,
                                                        "maxBatchDelay": 200, "responseTimeout": 30}),
                   handler=override(digits.handler, channels_last=False, fuse_conv_bn=False))
    store = work / "store"
    write_archive(spec, spec.model_config({"workers_on_host": 1}), store, work / "stage",
                  {"labels.json": work / "labels.json", "faulty_model.py": work / "faulty_model.py"},
                  "built by tests/integration/test_batch_faults.py")
    stack = NativeStack(run_dir=work / "run", ports=Ports.free(), model_store=store)
    proc = stack.start_torchserve()
    try:
        stack.wait_for_torchserve(proc, timeout=180)
        stack.proc = proc  # type: ignore[attr-defined]
        yield stack
    finally:
        stack.stop_all()


def _post(url: str, body: bytes, content_type: str) -> requests.Response:
    return requests.post(url, data=body, headers={"Content-Type": content_type}, timeout=60)


def test_a_failing_batch_answers_each_item_500_and_the_worker_serves_on(faulty_server: NativeStack) -> None:
    url = f"{faulty_server.inference_url}/predictions/faulty"
    requests_ = [(digit(), "image/png"), (tiny_png(), "image/png"), (b"not an image", "image/png"),
                 (digit(28), "image/png")] * 2
    with ThreadPoolExecutor(len(requests_)) as pool:
        responses = list(pool.map(lambda r: _post(url, *r), requests_))
    statuses = [r.status_code for r in responses]
    # The blank image fails every batch it lands in; the invalid bytes never reach a batch.
    assert all(r.status_code == 400 and r.json()["error"]["type"] == "invalid_image"
               for r in responses[2::4]), statuses
    assert all(r.status_code == 500 for r in responses[1::4]), statuses  # a blank image fails its batch
    failed = [r for r in responses if r.status_code == 500]
    for r in failed:
        assert r.json()["error"] == {"code": 500, "type": "internal_error",
                                     "message": "the server failed to process this item; see server logs"}
    assert set(statuses) <= {200, 400, 500}, statuses
    # The same worker answers the next request.
    after = _post(url, digit(), "image/png")
    assert after.status_code == 200 and len(after.json()["top_k"]) == 3, after.text
    log = (faulty_server.run_dir / "logs" / "model_log.log").read_text(errors="replace")
    assert re.search(r"model faulty: batch of \d+ failed after decoding; answering 500 to requests \[", log), log[-3000:]
    assert "RuntimeError: blank image in batch" in log
    metrics = requests.get(f"{faulty_server.metrics_url}/metrics", timeout=10).text
    counted = re.search(r'^handler_failed_batches_total\{[^}]*ModelName="faulty"[^}]*\} ([0-9.]+)$', metrics, re.MULTILINE)
    assert counted and float(counted.group(1)) >= 1, metrics[-2000:]
