"""A brought model over the Open Inference Protocol: tests/byo_models.py's torch.export program
(`shapes`, random weights, top_k 2), written outside the repository, archived by
`python -m stackctl models` from a spec folder that holds only its spec, and served by a native
stack of its own (TorchServe, front door and OIP gateway, as `make serve` starts them) on free
loopback ports. Health, metadata and infer with 1 and 8 instances, JSON and binary, over
tritonclient.http, tritonclient.grpc and the KServe SDK's REST client, each answer equal to
/predictions (tests/oip_calls.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from stackctl import paths
from stackctl.serve.native import NativeStack, Ports
from tests.byo_models import pt2_spec, write_byo_models
from tests.native_server import serve_until_ready
from tests.oip_calls import (
    KSERVE_PYTHON,
    check_grpc_infer,
    check_grpc_metadata,
    check_kserve_sdk,
    check_rest_infer,
    check_rest_metadata,
    host_port,
)

MODEL, KIND = "shapes", "image"
TOP_K = pt2_spec()["handler"]["top_k"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    models = write_byo_models(tmp_path_factory.mktemp("oip-byo"))
    for spec in models.spec_dir.glob("*.yaml"):   # the brought model alone: the cheapest real store
        if spec.name != f"{MODEL}.yaml":
            spec.unlink()
    done = subprocess.run([sys.executable, "-m", "stackctl", "models"], cwd=paths.ROOT, env={**os.environ, **models.env()},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in models.model_store.glob("*.mar")) == [f"{MODEL}.mar"]
    own = NativeStack(run_dir=tmp_path_factory.mktemp("oip-byo-run"), ports=Ports.free(), model_store=models.model_store)
    try:
        yield serve_until_ready(own)
    finally:
        own.stop_all()


@pytest.fixture(scope="module")
def rest(stack: NativeStack) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(host_port(stack.inference_url), network_timeout=60)


@pytest.fixture(scope="module")
def grpc(stack: NativeStack) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(stack.oip_grpc_address)


def test_health_and_metadata_over_rest_and_grpc(rest, grpc) -> None:
    assert check_rest_metadata(rest, MODEL, KIND, TOP_K)["versions"] == ["1.0"]
    check_grpc_metadata(grpc, rest, MODEL)


@pytest.mark.parametrize("count", [1, 8])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_rest_infer_equals_predictions(stack, rest, count: int, binary: bool) -> None:
    check_rest_infer(rest, stack.inference_url, MODEL, KIND, count, binary, TOP_K)


@pytest.mark.parametrize("count", [1, 8])
def test_grpc_infer_equals_predictions(stack, grpc, count: int) -> None:
    check_grpc_infer(grpc, stack.inference_url, MODEL, KIND, count, TOP_K)


@pytest.mark.skipif(not KSERVE_PYTHON.is_file(), reason="the KServe SDK venv is missing: `make kserve-client`")
@pytest.mark.parametrize("count", [1, 8])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_kserve_sdk_rest_client(stack, count: int, binary: bool, tmp_path: Path) -> None:
    check_kserve_sdk(stack.inference_url, MODEL, KIND, count, binary, tmp_path, TOP_K)
