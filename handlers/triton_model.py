"""The Triton Python-backend adapter: Triton's requests in, the model core's answers out.

The second runtime over `handlers.core.ModelCore` (TorchServe's is `handlers/base.py`). Triton
runs one `TritonPythonModel` per model instance (`instance_group`) in the backend's stub process;
the generated `model.py` of each model version (stackctl/serve/triton_repo.py) puts the repository
and .venv on the stub's path and imports this class. Its version folder holds the files of the
model's archive (weights, labels.json, model-config.yaml, MAR-INF/MANIFEST.json): the same files
TorchServe loads, read the same way.

Triton's frontend parses the Open Inference Protocol request (JSON or binary extension) and its
dynamic batcher hands `execute` a batch of requests; this module only translates: each request's
input tensor (`handlers/oip_contract.py`) becomes an `Instances` of the /predictions requests a
client would send for its elements (`handlers.oip_exchange.instance_request`), all requests of
the batch go through the core as one forward pass, and each `Result` becomes that request's
`label`/`probability` outputs or its own error (4xx -> INVALID_ARG, HTTP 400, with the message
TorchServe's runtime gives).

A BYTES element reaches the backend as bytes whether the client sent JSON or binary, so an image
element made only of base64 characters is read as the JSON form (base64 text), anything else as
the file's bytes (an image file always has bytes outside the base64 alphabet).
"""
from __future__ import annotations

import json
import locale
import re
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # the Python backend's module, only inside its stub
import yaml

from handlers import oip, runtime
from handlers.core import Instances, ModelCore, Result
from handlers.errors import InputError
from handlers.image_task import ImageTask
from handlers.oip_contract import LABEL, PROBABILITY, Kind, task_kind
from handlers.oip_exchange import instance_request
from handlers.settings import HandlerSettings, ServingSettings
from handlers.text_task import TextTask
from handlers.triton_metrics import TritonMetrics

MANIFEST = Path("MAR-INF") / "MANIFEST.json"
TASKS = {"image": ImageTask, "text": TextTask}
BASE64_TEXT = re.compile(rb"(data:[\w/+.-]*;base64,)?[A-Za-z0-9+/_-]+={0,2}")


def element_request(element: bytes, kind: Kind) -> Any:
    """The /predictions request for one BYTES element (see the module's last paragraph)."""
    if kind == "image" and BASE64_TEXT.fullmatch(element):
        return instance_request(element.decode("ascii"), kind)
    return instance_request(bytes(element), kind)


def error_message(result: Result) -> str:
    """The message of the core's error answer, as the v2 error body carries it (oip_exchange.error_reply)."""
    error = result.body.get("error")
    return str(error.get("message") if isinstance(error, dict) else error)


class TritonPythonModel:
    """One model instance: `initialize` loads the core from the version folder, `execute` answers a batch."""

    def initialize(self, args: dict[str, Any]) -> None:
        # The stub's interpreter is isolated and starts in the C locale, where open() reads ASCII
        # (langid's vocab.json failed to load): UTF-8, as TorchServe's workers run.
        locale.setlocale(locale.LC_CTYPE, "C.UTF-8")
        config = json.loads(args["model_config"])
        folder = Path(args["model_repository"]) / str(args["model_version"])
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["model"]
        model_config = yaml.safe_load((folder / manifest.get("configFile", "model-config.yaml")).read_text(encoding="utf-8")) or {}
        handler = dict(model_config.get("handler") or {})
        settings = HandlerSettings.from_config(handler)
        self.kind: Kind = task_kind(handler, manifest.get("handler"))
        name = settings.name or manifest["modelName"]
        gpu = args.get("model_instance_kind") == "GPU"
        device = runtime.select_device({"gpu_id": int(args.get("model_instance_device_id") or 0) if gpu else None})
        self.core = ModelCore.load(TASKS[self.kind], settings, folder, folder / manifest["serializedFile"], name,
                                   device, batch_size=max(1, int(config.get("max_batch_size") or 1)),
                                   own_workers=ServingSettings.from_config(model_config).workers)
        self.metrics = TritonMetrics(name)

    def read(self, request: Any) -> tuple[Instances, int]:
        """(the core's view of one request, the k it asked for), or its refusal (a bad top_k)."""
        try:
            k = oip.requested_top_k(json.loads(request.parameters() or "{}"), self.core.k)
        except oip.OipError as err:
            return Instances(refused=InputError(400, err.type, err.message)), self.core.k
        tensor = pb_utils.get_input_tensor_by_name(request, self.kind)
        elements = tensor.as_numpy().reshape(-1)
        return Instances(tuple(element_request(element, self.kind) for element in elements)), k

    def execute(self, requests: list[Any]) -> list[Any]:
        read = [self.read(request) for request in requests]
        results = self.core.answer([item for item, _ in read], [request.request_id() for request in requests],
                                   self.metrics)
        return [self.response(result, k) for result, (_, k) in zip(results, read)]

    def response(self, result: Result, k: int) -> Any:
        if result.status != 200:
            code = pb_utils.TritonError.INVALID_ARG if result.status < 500 else pb_utils.TritonError.INTERNAL
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(error_message(result), code))
        rows = [answer["top_k"][:k] for answer in result.body["answers"]]
        labels = np.array([[entry["label"].encode() for entry in row] for row in rows], dtype=np.object_)
        probabilities = np.array([[entry["probability"] for entry in row] for row in rows], dtype=np.float32)
        return pb_utils.InferenceResponse([pb_utils.Tensor(LABEL, labels), pb_utils.Tensor(PROBABILITY, probabilities)])

    def finalize(self) -> None:
        self.core = None  # type: ignore[assignment]
