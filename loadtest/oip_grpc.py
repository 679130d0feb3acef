"""OIP over gRPC for the load test: `inference.GRPCInferenceService/ModelInfer` (the KServe v2
service the OIP gateway serves, 7070 by default) through `tritonclient.grpc`, each call reported to
Locust as a request event, Locust's way for protocols other than HTTP.

gevent: grpcio's C core does its own I/O, which gevent's monkey-patching cannot reach, so one
blocking call would stall every user of the process. `grpc.experimental.gevent.init_gevent()`
makes grpcio cooperate; it must run after the standard library is patched (importing Locust does
that) and before any gRPC object exists in the process. Importing this module calls it (Locust's
own contrib/milvus.py does the same); users.py imports it only when the protocol is "oip-grpc".

Requests are built once per process, from the same instance groups as the REST bodies
(oip_bodies.instance_groups): tritonclient serialises each input into `raw_input_contents` then,
not in the timed call. Answers are checked for the shape [instances, k] of both outputs.
"""
from __future__ import annotations

import time
from typing import Any

import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import numpy as np  # noqa: E402
import tritonclient.grpc as triton  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from handlers import oip_contract  # noqa: E402
from loadtest.oip_bodies import instance_groups  # noqa: E402
from loadtest.payloads import kind_of, payloads_for  # noqa: E402
from stackctl.catalog.specs import ModelSpec  # noqa: E402

REQUEST_TYPE = "grpc"
TIMEOUT_S = 30.0   # as the HTTP users' network timeout (the specs' responseTimeout)

_REQUESTS: dict[tuple[str, int], list[list[Any]]] = {}


def requests_for(spec: ModelSpec, instances: int) -> list[list[Any]]:
    """Per request its one InferInput (BYTES [instances]), serialised now; cached per process."""
    key = (spec.name, instances)
    if key not in _REQUESTS:
        name = oip_contract.input_tensor(kind_of(spec)).name  # type: ignore[arg-type]
        built = []
        for group in instance_groups(payloads_for(spec).good, instances):
            tensor = triton.InferInput(name, [len(group)], "BYTES")
            data = np.empty(len(group), dtype=object)
            data[:] = group
            tensor.set_data_from_numpy(data)
            built.append([tensor])
        _REQUESTS[key] = built
    return _REQUESTS[key]


class OipGrpcClient:
    """One user's channel to the gateway; `infer` sends one request and fires Locust's event."""

    def __init__(self, address: str, spec: ModelSpec, instances: int, top_k: int | None, events: Any):
        self.client = triton.InferenceServerClient(address)
        self.spec, self.instances, self.top_k, self.events = spec, instances, top_k, events
        self.requests = requests_for(spec, instances)
        self.outputs = [triton.InferRequestedOutput(n) for n in oip_contract.OUTPUT_NAMES]

    def infer(self, inputs: list[Any], late_ms: float = 0.0) -> None:
        started = time.perf_counter()
        exception: Exception | None = None
        length = 0
        try:
            result = self.client.infer(self.spec.name, inputs, outputs=self.outputs, client_timeout=TIMEOUT_S)
            response = result.get_response()
            length = response.ByteSize()
            problem = self.check(response)
            if problem:
                exception = AssertionError(problem)
        except InferenceServerException as exc:
            exception = exc
        self.events.request.fire(request_type=REQUEST_TYPE, name=self.spec.name, response_length=length,
                                 response_time=(time.perf_counter() - started) * 1000 + late_ms,
                                 exception=exception, context={})

    def check(self, response: Any) -> str | None:
        """None when both outputs have shape [instances, k]."""
        shapes = {o.name: list(o.shape) for o in response.outputs}
        for name in oip_contract.OUTPUT_NAMES:
            got = shapes.get(name)
            if not got or len(got) != 2 or got[0] != self.instances or (self.top_k and got[1] != self.top_k):
                return f"{name} shape {got}, expected [{self.instances}, {self.top_k or 'k'}]"
        return None

    def close(self) -> None:
        self.client.close()
