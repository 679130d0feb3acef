"""The pod's one container, made from a PodPlan (stackctl.pod.pod_translate): staged files, start,
state, logs, exec and removal. The probes (pod_probes), the sandbox facts (pod_sandbox) and the
termination (pod_drain) act on it; stackctl.pod.podrun runs its life."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Self

from stackctl.pod import pod_translate
from stackctl.pod.docker_cli import docker
from stackctl.pod.pod_report import PodRunError

INIT_TIMEOUT_S = 600     # one init container's run; the model pull of a few archives takes seconds


class Pod:
    """One container made from a PodPlan; `with Pod(...) as pod:` always removes it."""

    def __init__(self, plan: pod_translate.PodPlan, staging: Path) -> None:
        self.plan = plan
        self.staging = staging
        self.started_at = 0.0
        self.init_seconds: dict[str, float] = {}       # init container -> seconds it ran

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def stage_files(self) -> None:
        for rel, content in self.plan.files.items():
            path = self.staging / rel
            if rel.endswith("/"):            # an empty folder (an absent optional Secret's volume)
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            # kubelet: ConfigMap files 0644 (defaultMode), group fsGroup; folders traversable.
            path.chmod(0o644)
            if self.plan.file_group is not None and os.geteuid() == 0:
                os.chown(path, 0, self.plan.file_group)
        for folder in [self.staging, *[p for p in self.staging.rglob("*") if p.is_dir()]]:
            folder.chmod(0o755)

    def start(self) -> None:
        self.remove()                        # a leftover of an interrupted run, same name
        self.stage_files()
        for name, options in self.plan.volumes:
            docker("volume", "create", "--label", f"{pod_translate.LABEL}=1", *options, name, timeout=60)
        self.hold_volumes()
        self.run_init_containers()
        self.started_at = time.monotonic()
        docker(*self.plan.docker_run(self.staging)[1:], timeout=120)

    @property
    def holder(self) -> str:
        return f"{self.plan.container_name}-sandbox"

    def hold_volumes(self) -> None:
        """A tmpfs volume lives only while a container mounts it: between an init container's exit
        and the next start it would be unmounted and emptied. A holder container, the kubelet's
        pause container in spirit (no network, no privileges, `sleep`), keeps every shared volume
        mounted for the pod's whole life."""
        if not self.plan.volumes:
            return
        mounts = [arg for i, (name, _) in enumerate(self.plan.volumes)
                  for arg in ("--mount", f"type=volume,source={name},target=/volumes/{i}")]
        docker("run", "--detach", "--name", self.holder, "--label", f"{pod_translate.LABEL}=1", "--network", "none",
               "--no-healthcheck",
               "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", "65534:65534",
               *mounts, "--entrypoint", "sleep", self.plan.image, "infinity", timeout=120)

    def run_init_containers(self) -> None:
        """Each init container in order, to completion: a kubelet starts the next (and the pod's
        containers) only after one exits 0; a failure leaves the pod in Init:Error."""
        for init in self.plan.init:
            began = time.monotonic()
            try:
                proc = docker(*init.docker_run(self.staging)[1:], timeout=INIT_TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired:
                raise PodRunError(f"init container {init.name} did not finish within {INIT_TIMEOUT_S}s") from None
            finally:
                docker("rm", "--force", init.container_name, timeout=60, check=False)
            self.init_seconds[init.name] = round(time.monotonic() - began, 1)
            if proc.returncode != 0:
                raise PodRunError(f"init container {init.name} exited {proc.returncode} (Init:Error; the pod's "
                                  f"container never starts):\n{(proc.stdout + proc.stderr)[-3000:]}")

    def remove(self) -> None:
        try:
            docker("rm", "--force", "--volumes", self.plan.container_name, timeout=60, check=False)
            for init in self.plan.init:
                docker("rm", "--force", init.container_name, timeout=60, check=False)
            docker("rm", "--force", self.holder, timeout=60, check=False)
            for name, _ in self.plan.volumes:
                docker("volume", "rm", "--force", name, timeout=60, check=False)
        except PodRunError:
            pass

    def state(self) -> dict[str, Any]:
        out = docker("inspect", "--format", "{{json .State}}", self.plan.container_name, timeout=30)
        return dict(json.loads(out.stdout))

    def logs(self, tail: int = 60) -> str:
        proc = docker("logs", "--tail", str(tail), self.plan.container_name, timeout=30, check=False)
        return proc.stdout + proc.stderr

    def all_logs(self) -> str:
        proc = docker("logs", self.plan.container_name, timeout=60, check=False)
        return proc.stdout + proc.stderr

    def exec(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.plan.container_name, *argv, timeout=timeout, check=False)

    def assert_running(self, during: str) -> None:
        state = self.state()
        if not state.get("Running"):
            raise PodRunError(f"the container exited (code {state.get('ExitCode')}, OOMKilled "
                              f"{state.get('OOMKilled')}) during {during}; the kubelet would restart it "
                              f"(CrashLoopBackOff). Last log lines:\n{self.logs()}")
