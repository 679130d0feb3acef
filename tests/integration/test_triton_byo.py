"""A brought model on the Triton runtime: tests/byo_models.py's torch.export program (`shapes`,
top_k 2, batchSize 4), archived by `python -m stackctl models` from a spec folder outside the
repository, served by tritonserver from a repository generated from that store. tritonclient.http
(JSON and binary) and tritonclient.grpc answers equal the TorchServe handler's for the same
archive; a request of more instances than batchSize is Triton's 400 (docs/triton.md).
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from stackctl import paths
from stackctl.serve.triton import TritonStack
from tests.byo_models import pt2_spec, write_byo_models
from tests.oip_calls import OUTPUTS, assert_equal_answers, element, host_port, instances
from tests.triton_calls import reference_answers, triton_missing, triton_server

MODEL, KIND = "shapes", "image"
TOP_K = pt2_spec()["handler"]["top_k"]
BATCH = pt2_spec()["serving"]["batchSize"]

pytestmark = pytest.mark.skipif(triton_missing() is not None,
                                reason=f"no Triton here ({triton_missing()}); `make test` installs it first")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = write_byo_models(tmp_path_factory.mktemp("triton-byo"))
    for spec in models.spec_dir.glob("*.yaml"):   # the brought model alone
        if spec.name != f"{MODEL}.yaml":
            spec.unlink()
    done = subprocess.run([sys.executable, "-m", "stackctl", "models"], cwd=paths.ROOT,
                          env={**os.environ, **models.env()}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return models.model_store


@pytest.fixture(scope="module")
def triton(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonStack]:
    with triton_server(store, tmp_path_factory.mktemp("triton-byo-run")) as stack:
        yield stack


def expected(store: Path, values: list[bytes]) -> list[dict]:
    return reference_answers(store / f"{MODEL}.mar", KIND, values)


@pytest.mark.parametrize("count", [1, BATCH])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_rest_infer_equals_torchserve(triton, store, count: int, binary: bool) -> None:
    rest = httpclient.InferenceServerClient(host_port(triton.inference_url), network_timeout=60)
    assert rest.get_model_metadata(MODEL)["outputs"][0]["shape"] == [-1, TOP_K]
    values = instances(KIND, count)
    tensor = httpclient.InferInput(KIND, [count, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[element(KIND, v, binary)] for v in values], dtype=np.object_),
                               binary_data=binary)
    result = rest.infer(MODEL, [tensor], outputs=[httpclient.InferRequestedOutput(n, binary_data=binary) for n in OUTPUTS])
    assert_equal_answers(result.as_numpy("label"), result.as_numpy("probability"), expected(store, values), TOP_K)


def test_grpc_infer_equals_torchserve_and_the_batch_bound(triton, store) -> None:
    grpc = grpcclient.InferenceServerClient(f"{triton.host}:{triton.ports.oip_grpc}")
    values = instances(KIND, BATCH)
    tensor = grpcclient.InferInput(KIND, [BATCH, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[v] for v in values], dtype=np.object_))
    result = grpc.infer(MODEL, [tensor])
    assert_equal_answers(result.as_numpy("label"), result.as_numpy("probability"), expected(store, values), TOP_K)
    more = grpcclient.InferInput(KIND, [BATCH + 1, 1], "BYTES")
    more.set_data_from_numpy(np.array([[v] for v in instances(KIND, BATCH + 1)], dtype=np.object_))
    with pytest.raises(InferenceServerException, match=f"batch-size must be <= {BATCH}"):
        grpc.infer(MODEL, [more])
