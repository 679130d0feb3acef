"""Every `python -m` entry point of stackctl, bench and loadtest, in one table.

`python -m stackctl --help` lists them; `python -m stackctl run <name> [args]` runs one, exactly as
`python -m <module> [args]` does (which keeps working: the Makefile, the image and the docs call
the modules by name). tests/unit/test_commands.py fails when a module with a `__main__` block, or a
`-m` in the Makefile, is missing here, or when a row names a module that is gone.
"""
from __future__ import annotations

import runpy
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str          # `python -m stackctl run <name>`
    module: str        # `python -m <module>`
    help: str          # one line
    make: str = ""     # the make target that calls it, if any


COMMANDS: tuple[Command, ...] = (
    # stackctl: build, serve, deploy and check the stack
    Command("preflight", "stackctl.preflight", "is every tool the test suite drives installed?", "make test"),
    Command("container", "stackctl.serve.container", "the image's entry point under tini: TorchServe and its front door"),
    Command("oip-gateway", "stackctl.serve.oip_gateway", "the Open Inference Protocol's gRPC service and REST metadata routes"),
    Command("triton-repo", "stackctl.serve.triton_repo",
            "generate the Triton model repository from the archives (make serve RUNTIME=triton)", "make triton-repo"),
    Command("token-auth", "stackctl.serve.token_auth", "TorchServe token authorization: turn it on, print a key"),
    Command("rules", "stackctl.deploy.rules", "write (or --check) the per-model Prometheus alert rules from the specs",
            "make rules"),
    Command("k8s", "stackctl.deploy.k8s", "render the Kubernetes manifests: an overlay plus components", "make k8s-render"),
    Command("k8s-monitoring", "stackctl.deploy.k8s_monitoring",
            "generate the Kubernetes monitoring objects from the Prometheus rules", "make k8s-generate"),
    Command("k8s-kserve", "stackctl.deploy.k8s_kserve",
            "generate k8s/kserve/: ServingRuntimes and one InferenceService per model spec", "make kserve-generate"),
    Command("podrun", "stackctl.pod.podrun", "run the Kubernetes pod as a Docker container, as a kubelet would",
            "make k8s-pod"),
    Command("gpu-check", "stackctl.serve.gpu_check", "refuse to start without a usable CUDA device when STACK_REQUIRE_CUDA=1"),
    Command("k8s-release", "stackctl.deploy.k8s_release", "record the digests make push pushed where kubectl apply -k reads them",
            "make push"),
    Command("model-oci", "stackctl.deploy.model_oci", "push every archive to a registry as an OCI artifact, or pull them by digest",
            "make push-models"),
    Command("sbom", "stackctl.deploy.sbom", "a CycloneDX SBOM per built image (Python and Debian packages)", "make sbom"),
    Command("dockerfile", "stackctl.deploy.dockerfile", "print each docker/Dockerfile stage's runtime settings"),
    Command("audit", "stackctl.deploy.audit", "checkov on the deploy files, pip-audit on the requirements", "make audit"),
    Command("lockfile", "stackctl.deploy.lockfile",
            "an image stage's packages from requirements.lock, hashes included (docker/Dockerfile)"),
    # bench: the stack against its in-process limit and its peers
    Command("bench", "bench.run", "the stack against its true in-process limit and its peers, in one run",
            "make bench"),
    Command("bench-report", "bench.report", "bench results -> ratios, the issue's targets, Markdown"),
    Command("bench-plot", "bench.plot", "one PNG per workload: throughput against p99 for every server"),
    Command("tune", "bench.tune", "per model, the serving settings with the most throughput within its p95 SLO",
            "make tune"),
    Command("saturation", "bench.saturation", "the bench's closed-loop saturation sweep against a running server"),
    Command("limit", "bench.limit", "the archive's own handler in-process: the throughput limit"),
    Command("cuda-options", "bench.cuda_options", "on CUDA: what the image handler's GPU options buy, in-process"),
    Command("peer-fastapi", "bench.fastapi_peer", "the FastAPI + uvicorn peer server"),
    Command("peer-litserve", "bench.litserve_peer", "the LitServe peer server"),
    Command("peer-bentoml", "bench.bentoml_peer", "the BentoML peer server (run from .venv-bentoml)"),
    Command("probe-decode-processes", "bench.probes.decode_processes",
            "photos/s per process of the image handler's decode paths"),
    Command("probe-floor-knobs", "bench.probes.floor_knobs", "the frontend knobs left on issue 19's floor list"),
    Command("probe-forward-chunks", "bench.probes.forward_chunks",
            "ms per item of one forward pass at each batch size, in one pass or passes of max_forward_batch"),
    Command("probe-front-door", "bench.probes.front_door", "what the front door (nginx) costs per request"),
    Command("probe-langid-backends", "bench.probes.langid_backends",
            "langid per handler call on CUDA GRUs and ONNX Runtime"),
    Command("probe-oip-rows", "bench.probes.oip_rows",
            "make bench's OIP rows alone: the limit, /predictions and 1/8/32-instance OIP requests in items/s"),
    # loadtest: load against a running stack
    Command("chaos", "loadtest.chaos", "faults on a schedule under steady load; every request answered, recovery times",
            "make chaos"),
    Command("loadtest", "loadtest.run", "one headless Locust run into reports/loadtest/<timestamp>/, then the report",
            "make loadtest"),
    Command("loadtest-report", "loadtest.report", "read a Locust run's CSV files: chart and SLO summary"),
    Command("locust-debug", "loadtest.locustfile", "run one Locust user in-process, for step debugging"),
    Command("capacity", "loadtest.capacity", "per model, the highest arrival rate that meets its p95 SLO",
            "make capacity"),
    Command("soak", "loadtest.soak", "constant open-loop load at about half of capacity for a long while",
            "make soak"),
)

BY_NAME = {c.name: c for c in COMMANDS}


def listing() -> str:
    """The table as `--help` shows it."""
    width = max(len(c.name) for c in COMMANDS)
    lines = ["other commands: python -m stackctl run <name> [args], or python -m <module> [args]:"]
    for c in COMMANDS:
        made = f" ({c.make})" if c.make else ""
        lines.append(f"  {c.name:<{width}}  {c.help}{made}  [-m {c.module}]")
    return "\n".join(lines)


def run(name: str, argv: list[str]) -> int:
    """Run command `name` as `python -m <its module> *argv` would, in this process. A module that
    ends in sys.exit(...) exits from here with its own status, as it would on its own."""
    command = BY_NAME[name]
    sys.argv = [command.module, *argv]
    runpy.run_module(command.module, run_name="__main__", alter_sys=True)
    return 0
