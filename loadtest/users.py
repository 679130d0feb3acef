"""One Locust user class per model, generated from its spec (weight, payload kind, limits).

Stats rows are named after the model (`digits`), so Locust's own percentiles are per model; the
deliberately bad requests get their own row (`digits [bad]`) so they never flatter the latency.

`protocol` picks the API: "predictions" (the default, TorchServe's /predictions/<m> with the
spec's bodies), "oip" (Open Inference Protocol: POST /v2/models/<m>/infer, binary tensor data,
`instances` of the spec's bodies per request; oip_bodies.py) or "oip-grpc" (the same instances
through the OIP gateway's gRPC ModelInfer at `grpc_address`, tritonclient.grpc; oip_grpc.py). With "oip", Locust's rows still
count requests; items are requests x `instances` (every answer is checked to hold that many).
"""
from __future__ import annotations

import json
import random
import uuid
from collections.abc import Sequence
from typing import Any

from locust import FastHttpUser, task
from locust.contrib.fasthttp import ResponseContextManager

from loadtest import oip_bodies, payloads
from loadtest.checks import AnswerShape, answer_shape, check_oip_answer, check_prediction, check_rejection
from loadtest.pacing import Pacer
from loadtest.slo import BAD_SUFFIX
from stackctl.catalog.specs import ModelSpec
from stackctl.serve.token_auth import auth_headers


class ModelUser(FastHttpUser):
    """Sends one model's payloads; subclasses (one per spec) set `spec` and `weight`."""

    abstract = True
    spec: ModelSpec
    expected: AnswerShape        # what a 200 answer must look like (read once per class)
    network_timeout = 30.0      # = the specs' responseTimeout; TorchServe answers 5xx after it
    connection_timeout = 10.0
    # Set by make_user_class, by locustfile.py from options, or by the driver (driver.py) per step;
    # class-level so every user of a model agrees.
    route: str = ""              # default /predictions/<spec name>; the bench loads variants of an archive
    bodies: list[payloads.Payload] | None = None   # default: the spec's valid payloads
    bad_share: float = 0.0
    user_rate: float = 0.0       # >0: open loop, each user starts this many requests/s
    think_time: float = 0.2      # closed loop: mean pause between a user's requests (s)
    protocol: str = "predictions"  # or "oip", "oip-grpc" (PROTOCOLS)
    instances: int = 1           # OIP: instances (items) per request
    grpc_address: str = "127.0.0.1:7070"  # oip-grpc: the OIP gateway's gRPC address

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        options = environment.parsed_options
        if options is not None:  # command line / locust.conf / LOCUST_* env; workers get the master's
            cls = type(self)
            cls.bad_share = float(getattr(options, "bad_request_share", cls.bad_share))
            cls.user_rate = float(getattr(options, "user_rate", cls.user_rate))
            cls.think_time = float(getattr(options, "think_time", cls.think_time))
            cls.protocol = str(getattr(options, "protocol", cls.protocol))
            cls.instances = int(getattr(options, "instances", cls.instances))
            cls.grpc_address = str(getattr(options, "grpc_address", cls.grpc_address))
        self.grpc = None
        if self.protocol == "oip-grpc":
            from loadtest.oip_grpc import OipGrpcClient  # calls grpcio's init_gevent: only when used

            self.grpc = OipGrpcClient(self.grpc_address, self.spec, self.instances, self.expected.top_k,
                                      environment.events)
        self.good, self.bad, self.path = self._requests()
        self.pacer = Pacer(self.user_rate or 1.0, phase=random.random())
        self.auth = auth_headers("inference")  # TS_INFERENCE_KEY or TS_KEY_FILE; {} when auth is off

    def _requests(self) -> tuple[Sequence[Any], Sequence[payloads.Payload], str]:
        """(valid requests, deliberately bad ones, path) for this user's protocol."""
        if self.grpc is not None:
            return self.grpc.requests, (), ""
        if self.protocol == "oip":
            # No deliberately bad OIP bodies yet: --bad-request-share sends /predictions-only cases.
            return (self.bodies or oip_bodies.oip_payloads_for(self.spec, self.instances), (),
                    self.route or oip_bodies.infer_path(self.spec.name))
        return (self.bodies or payloads.payloads_for(self.spec).good,
                [] if self.bodies else payloads.payloads_for(self.spec).bad,
                self.route or f"/predictions/{self.spec.name}")

    def on_stop(self) -> None:
        if self.grpc is not None:
            self.grpc.close()

    def wait_time(self) -> float:
        if self.user_rate > 0:
            return self.pacer.next_wait(self.user_rate)
        return random.uniform(0, 2 * self.think_time)

    @task
    def predict(self) -> None:
        late_s = self.pacer.late_by() if self.user_rate > 0 else 0.0
        if self.grpc is not None:
            self.grpc.infer(random.choice(self.good), late_s * 1000)
            return
        bad = self.bad_share > 0 and self.bad and random.random() < self.bad_share
        item = random.choice(self.bad if bad else self.good)
        name = self.spec.name + (BAD_SUFFIX if bad else "")
        # FastHttpSession sends bytes as they are; its annotation names only str and dict.
        with self.client.post(self.path, data=item.body,  # type: ignore[arg-type]
                              headers={"Content-Type": item.content_type, **dict(item.headers), **self.auth},
                              name=name, catch_response=True) as response:
            self._judge(response, item)
            if late_s:
                # Open loop: latency counts from the scheduled start (see shapes.py).
                response.request_meta["response_time"] += late_s * 1000

    def _judge(self, response: ResponseContextManager, item: payloads.Payload) -> None:
        status = response.status_code or 0
        if status == 0:
            response.failure(f"no answer: {getattr(response, 'error', None) or 'connection failed'}")
            return
        if item.is_bad:
            problem = check_rejection(item.expect_status, item.expect_error, status, response.text)
        elif item.instances > 1 or self.protocol == "oip":
            length = response.headers.get(oip_bodies.HEADER_LENGTH) if response.headers is not None else None
            problem = check_oip_answer(self.expected, item.instances, status, response.content,
                                       length if isinstance(length, str) else None)
        else:
            problem = check_prediction(self.expected, status, response.text)
        if problem:
            response.failure(problem)
        else:
            response.success()


PROTOCOLS = ("predictions", "oip", "oip-grpc")


# --- streaming models (a spec with `sequence:`) -------------------------------------------------
CHUNK_CHARS = 24
ID, START, END = "ts_request_sequence_id", "ts_request_sequence_start", "ts_request_sequence_end"
_RNG = random.Random()


def text_of(body: bytes, content_type: str) -> str:
    """The text of a payload (text/plain, or JSON {"text": ...})."""
    decoded = body.decode("utf-8")
    return json.loads(decoded)["text"] if content_type.startswith("application/json") else decoded


def chunks(text: str, rng: random.Random) -> list[str]:
    pieces, at = [], 0
    while at < len(text):
        size = rng.randint(1, CHUNK_CHARS)
        pieces.append(text[at:at + size])
        at += size
    return pieces


class StreamUser(ModelUser):
    """One stream at a time, one chunk per task: a payload's text cut at random into chunks of
    1..CHUNK_CHARS characters, sent in order with TorchServe's sequence headers (start on the first,
    end on the last). So the users are the concurrent streams, Locust's request rate (and the open
    loop's schedule) is chunks per second, and the pause between a user's tasks is the pause
    between a stream's chunks. A refused chunk ends its stream; the next task starts a new one."""

    abstract = True
    pieces: list[str] = []
    position = 0
    sequence = ""

    def next_chunk(self) -> None:
        late_s = self.pacer.late_by() if self.user_rate > 0 else 0.0
        if self.position >= len(self.pieces):
            item = random.choice(payloads.payloads_for(self.spec).good)
            self.pieces, self.position = chunks(text_of(item.body, item.content_type), _RNG), 0
            self.sequence = f"loadtest-{uuid.uuid4()}"
        index = self.position
        flags = {**({START: "true"} if index == 0 else {}), **({END: "true"} if index == len(self.pieces) - 1 else {})}
        headers = {"Content-Type": "text/plain; charset=utf-8", ID: self.sequence, **flags, **self.auth}
        with self.client.post(f"/predictions/{self.spec.name}", data=self.pieces[index].encode("utf-8"),  # type: ignore[arg-type]
                              headers=headers, name=self.spec.name, catch_response=True) as response:
            status = response.status_code or 0
            problem = check_prediction(self.expected, status, response.text) if status else "no answer"
            self.position = len(self.pieces) if problem else index + 1
            if problem:
                response.failure(problem)
            else:
                response.success()
            if late_s:
                response.request_meta["response_time"] += late_s * 1000


# Its only task, set past Locust's class machinery (which adds the base classes' tasks to any a
# class names): ModelUser's would send stateless requests, and the deliberately bad ones, which
# `--bad-request-share` leaves to the stateless models.
StreamUser.tasks = [StreamUser.next_chunk]


def make_user_class(spec: ModelSpec, module: str = __name__, *, route: str = "",
                    bodies: list[payloads.Payload] | None = None, protocol: str = "predictions",
                    instances: int = 1) -> type[ModelUser]:
    """`DigitsUser` etc.: a concrete ModelUser for one spec, weighted by `load.weight`; `route` and
    `bodies` replace the spec's path and payloads (the bench's archive variants and photos);
    `protocol` and `instances` (PROTOCOLS; OIP instances per request) as on the command line."""
    if protocol not in PROTOCOLS or instances < 1:
        raise ValueError(f"protocol must be one of {PROTOCOLS} and instances >= 1, got {protocol!r}, {instances}")
    class_name = "".join(part.capitalize() for part in spec.name.replace("-", "_").split("_")) + "User"
    base = StreamUser if spec.sequence is not None else ModelUser
    return type(class_name, (base,), {
        "spec": spec, "expected": answer_shape(spec), "weight": spec.load_weight, "abstract": False, "__module__": module,
        "route": route, "bodies": list(bodies) if bodies else None, "protocol": protocol, "instances": instances,
        "__doc__": f"Load for model {spec.name!r} ({spec.description or 'see its spec'}).",
    })
