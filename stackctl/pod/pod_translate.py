"""A rendered Kubernetes pod spec, translated into the `docker run` a kubelet's runtime would do.

Pure translation, no engine: `plan(docs, ...)` takes the kustomize output, finds the Deployment's
container and returns a `PodPlan` (docker run arguments, ConfigMap files to write, probes,
preStop, grace period). stackctl/pod/podrun.py runs it; tests/unit/test_pod_translate.py checks it.
The values a kubelet computes (quantities, env) are in stackctl/pod/pod_fields.py, the volumes in
stackctl/pod/pod_volumes.py; this module holds the rest of the mapping below, and the plan.

What a kubelet does, and how it maps:
- image, imagePullPolicy      image, `--pull` (IfNotPresent = missing, Never = never, Always = always)
- command / args              `--entrypoint command[0]` + the rest; args alone replace the image's CMD;
                              $(VAR) references expand from the container's env, as the kubelet does
- env                         `-e`; valueFrom fieldRef (metadata.name/namespace/uid/labels/annotations,
                              spec.nodeName/serviceAccountName) and resourceFieldRef (rounded up, as the
                              kubelet does) are resolved here; status.podIP & co. only exist once a
                              sandbox has an address, configMapKeyRef/secretKeyRef are not read: those fail
- runAsUser/runAsGroup        `--user uid:gid`; fsGroup and supplementalGroups `--group-add`
- readOnlyRootFilesystem      `--read-only`; capabilities `--cap-drop/--cap-add`; privileged
- allowPrivilegeEscalation=false  `--security-opt no-new-privileges`; seccomp RuntimeDefault is
                              Docker's default profile, Unconfined `seccomp=unconfined`
- emptyDir                    a tmpfs per mount: size = sizeLimit, **exec** (Docker's --tmpfs default is
                              noexec; kubelet emptyDirs are exec, and TorchServe silently drops from
                              epoll and Unix sockets to NIO and TCP on a noexec /tmp), mode 2777 and
                              group fsGroup (what the kubelet's volume ownership gives). Difference: a
                              disk emptyDir over sizeLimit gets the pod evicted; a tmpfs gives ENOSPC,
                              and its pages count against the memory limit
- configMap volumes           the ConfigMap of the rendered output, written to files and bind-mounted
                              read-only (the whole folder, or one file for a subPath mount)
- limits.memory               `--memory` = `--memory-swap` (no swap, as on a kubelet)
- limits.cpu / requests.cpu   CFS quota over a 100 ms period and cpu shares, the kubelet's formulas
                              (not `--cpus`, which refuses more CPUs than this host has)
- nvidia.com/gpu              `--gpus N`, unless the caller drops the GPU request (said in the plan)
- ports                       published on 127.0.0.1 at the host ports the caller chose
- initContainers              each a foreground `docker run`, in order, each to exit 0 before the next
                              and before the pod's container starts (a failure stops the pod, as
                              Init:Error does); they run on the host's network, the one departure
                              (init_plan says why); emptyDirs they share with the server are named
                              tmpfs volumes (stackctl/pod/pod_volumes.py), so what they write is there
- secret (optional, absent)   the empty folder a kubelet mounts; a Secret the pod needs fails here
Not translated (no effect on a single container): the service-account token (the manifests turn it
off; a pod that wants one fails here), ephemeral-storage limits (kubelet eviction), /etc/hosts and
/dev/termination-log, the KUBERNETES_SERVICE_* variables, scheduling fields.
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackctl.pod.pod_fields import TranslationError, environment, expand, quantity
from stackctl.pod.pod_volumes import configmaps, secret_names, shared_volumes, volume_args

CPU_PERIOD_US = 100_000          # the kubelet's CFS period (cpu.cfs_period_us)
LABEL = "stackctl.podrun"        # on every container this module makes, so leftovers can be found


@dataclass(frozen=True)
class Probe:
    """One probe with the manifest's timings: an exec argv, or a host port (+ path) on 127.0.0.1."""

    kind: str                                  # exec | httpGet | tcpSocket
    exec_command: tuple[str, ...] = ()
    host_port: int = 0
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    failure_threshold: int = 3
    success_threshold: int = 1


@dataclass
class InitPlan:
    """One init container: `docker run` in the foreground, which must exit 0 before the next."""

    name: str                                  # as in the manifest
    container_name: str
    image: str
    run_args: list[str]
    command_args: list[str]

    def docker_run(self, staging: Path, docker: str = "docker") -> list[str]:
        return [docker, "run", *staged(self.run_args, staging), self.image, *self.command_args]


@dataclass
class PodPlan:
    container_name: str
    pod_name: str
    image: str
    run_args: list[str]                        # everything between `docker run` and the image
    command_args: list[str]                    # after the image
    files: dict[str, str]                      # staging-relative path -> content (ConfigMap files)
    file_group: int | None                     # group of those files (fsGroup)
    host_ports: dict[str, int]                 # port name (or number) -> host port on 127.0.0.1
    probes: dict[str, Probe]                   # startupProbe / readinessProbe / livenessProbe
    pre_stop: dict[str, Any] | None            # the lifecycle handler, as in the manifest
    grace_seconds: int
    notes: list[str] = field(default_factory=list)
    init: list[InitPlan] = field(default_factory=list)       # in the manifest's order
    volumes: list[tuple[str, list[str]]] = field(default_factory=list)   # (name, `docker volume create` options)

    def docker_run(self, staging: Path, docker: str = "docker") -> list[str]:
        """The full command line, bind sources under `staging` (where the files are written)."""
        return [docker, "run", *staged(self.run_args, staging), self.image, *self.command_args]


# ------------------------------------------------------------------------------------------------
# Finding the pod

def find_deployment(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [d for d in docs if d.get("kind") == "Deployment" and d["metadata"]["name"] == name]
    if len(found) != 1:
        raise TranslationError(f"expected one Deployment {name!r} in the rendered manifests, found {len(found)}")
    return found[0]


# ------------------------------------------------------------------------------------------------
# Probes and ports

def container_ports(container: dict[str, Any]) -> dict[str, int]:
    """name -> containerPort (and str(number) -> number) for every declared port."""
    ports: dict[str, int] = {}
    for p in container.get("ports") or []:
        ports[str(p["containerPort"])] = p["containerPort"]
        if p.get("name"):
            ports[p["name"]] = p["containerPort"]
    return ports


def probe(raw: dict[str, Any], ports: dict[str, int], host_ports: dict[int, int]) -> Probe:
    timing = {"initial_delay": raw.get("initialDelaySeconds", 0), "period": raw.get("periodSeconds", 10),
              "timeout": raw.get("timeoutSeconds", 1), "failure_threshold": raw.get("failureThreshold", 3),
              "success_threshold": raw.get("successThreshold", 1)}
    if "exec" in raw:
        return Probe("exec", exec_command=tuple(raw["exec"]["command"]), **timing)
    for kind in ("httpGet", "tcpSocket"):
        if kind in raw:
            action = raw[kind]
            if action.get("host"):
                raise TranslationError(f"{kind} probe with host {action['host']}: not translated")
            if action.get("scheme", "HTTP") != "HTTP":
                raise TranslationError(f"{kind} probe scheme {action['scheme']}: not translated")
            port = ports.get(str(action["port"]))
            if port is None:
                raise TranslationError(f"{kind} probe port {action['port']} is not a containerPort")
            headers = tuple((h["name"], h["value"]) for h in action.get("httpHeaders") or [])
            return Probe(kind, host_port=host_ports[port], path=action.get("path", "/"), headers=headers, **timing)
    raise TranslationError(f"probe {sorted(raw)} is not translated (exec, httpGet, tcpSocket are)")


# ------------------------------------------------------------------------------------------------
# The plan

PULL = {"IfNotPresent": "missing", "Never": "never", "Always": "always"}


def plan(docs: list[dict[str, Any]], host_ports: dict[int, int], *, deployment: str = "torchserve",
         container: str | None = None, container_name: str = "podrun-torchserve", drop_gpu: bool = False,
         node_name: str = "podrun", extra_env: dict[str, str] | None = None) -> PodPlan:
    """The docker run of one container of a rendered Deployment's pod, and of the pod's init
    containers before it. `host_ports` maps each containerPort to the 127.0.0.1 port to publish
    it on (every declared port must have one). `extra_env` is set over every container's env (the
    caller's choice, said in the plan's notes)."""
    dep = find_deployment(docs, deployment)
    spec = dep["spec"]["template"]["spec"]
    chosen = [c for c in spec["containers"] if container in (None, c["name"])]
    if not chosen:
        raise TranslationError(f"Deployment {deployment} has no container {container!r}")
    c = chosen[0]
    pod = pod_identity(dep, node_name)
    pod_name = pod["metadata"]["name"]
    pod_sc = spec.get("securityContext") or {}
    notes = [f"env {name}={value} set by the caller over the manifest's" for name, value in (extra_env or {}).items()]
    shared = shared_volumes(spec, container_name, pod_sc.get("fsGroup"))
    files: dict[str, str] = {}

    args = ["--detach", "--name", container_name, "--hostname", pod_name, "--label", f"{LABEL}=1", "--restart", "no"]
    args += container_args(c, docs, pod, shared, files, notes, drop_gpu, extra_env)

    # Ports: every declared containerPort, published on loopback only.
    ports = container_ports(c)
    missing = sorted(set(ports.values()) - set(host_ports))
    if missing:
        raise TranslationError(f"no host port chosen for containerPort(s) {missing}")
    for port in sorted(set(ports.values())):
        args += ["--publish", f"127.0.0.1:{host_ports[port]}:{port}"]
    by_name = {name: host_ports[port] for name, port in ports.items()}

    inits = [init_plan(i, f"{container_name}-init-{i['name']}", docs, pod, shared, files, notes, drop_gpu, extra_env)
             for i in spec.get("initContainers") or []]
    probes = {kind: probe(c[kind], ports, host_ports) for kind in ("startupProbe", "readinessProbe", "livenessProbe")
              if kind in c}
    return PodPlan(container_name=container_name, pod_name=pod_name, image=c["image"], run_args=args,
                   command_args=command_args_of(c, pod, extra_env), files=files, file_group=pod_sc.get("fsGroup"),
                   host_ports=by_name, probes=probes, pre_stop=(c.get("lifecycle") or {}).get("preStop"),
                   grace_seconds=int(spec.get("terminationGracePeriodSeconds", 30)), notes=notes,
                   init=inits, volumes=list(shared.values()))


def container_args(c: dict[str, Any], docs: list[dict[str, Any]], pod: dict[str, Any],
                   shared: dict[str, tuple[str, list[str]]], files: dict[str, str], notes: list[str],
                   drop_gpu: bool, extra_env: dict[str, str] | None) -> list[str]:
    """What one container (init or not) of the pod gets: pull policy, sandbox, limits, env and
    entry point, volumes; its ConfigMap files go into `files`."""
    spec, pod_sc = pod["spec"], pod["spec"].get("securityContext") or {}
    args = ["--pull", PULL[c.get("imagePullPolicy", "IfNotPresent")]]
    args += security_args(c.get("securityContext") or {}, pod_sc)
    args += resource_args(c.get("resources") or {}, drop_gpu, notes)
    args += environment_and_command(c, pod, extra_env)[0]
    v_args, v_files, v_notes = volume_args(c, spec, configmaps(docs), pod_sc.get("fsGroup"), shared,
                                           secret_names(docs))
    files.update(v_files)
    notes += [n for n in v_notes if n not in notes]
    return args + v_args


def command_args_of(c: dict[str, Any], pod: dict[str, Any], extra_env: dict[str, str] | None) -> list[str]:
    return environment_and_command(c, pod, extra_env)[1]


def init_plan(c: dict[str, Any], name: str, docs: list[dict[str, Any]], pod: dict[str, Any],
              shared: dict[str, tuple[str, list[str]]], files: dict[str, str], notes: list[str],
              drop_gpu: bool, extra_env: dict[str, str] | None) -> InitPlan:
    """An init container: run to completion before the next one and before the pod's container.
    It runs on the host's network (podrun's one departure for init containers): a pod's init
    containers reach the registry over the cluster network, and here the registry of `make
    push-models` listens on the host's loopback. The server container keeps its own network."""
    if c.get("restartPolicy") == "Always":
        raise TranslationError(f"init container {c['name']} is a sidecar (restartPolicy Always): not translated")
    for field_name in ("ports", "startupProbe", "readinessProbe", "livenessProbe", "lifecycle"):
        if c.get(field_name):
            raise TranslationError(f"init container {c['name']} has {field_name}: not translated")
    args = ["--name", name, "--label", f"{LABEL}=1", "--network", "host"]
    args += container_args(c, docs, pod, shared, files, notes, drop_gpu, extra_env)
    note = "init containers run on the host's network (to reach a registry on the host's loopback)"
    if note not in notes:
        notes.append(note)
    return InitPlan(name=c["name"], container_name=name, image=c["image"], run_args=args,
                    command_args=command_args_of(c, pod, extra_env))


def pod_identity(dep: dict[str, Any], node_name: str) -> dict[str, Any]:
    """The pod object the downward API reads (name, namespace, a fresh uid, labels, node), after
    refusing the pod-level features a lone container cannot have."""
    template = dep["spec"]["template"]
    spec = template["spec"]
    if spec.get("automountServiceAccountToken") is not False:
        raise TranslationError("the pod mounts a service-account token (automountServiceAccountToken is not "
                               "false); a container outside a cluster has none to mount")
    return {"metadata": {"name": f"{dep['metadata']['name']}-podrun",
                         "namespace": dep["metadata"].get("namespace", "default"),
                         "uid": str(uuid.uuid4()), "labels": template["metadata"].get("labels") or {},
                         "annotations": template["metadata"].get("annotations") or {}},
            "spec": spec, "nodeName": node_name}


def security_args(sc: dict[str, Any], pod_sc: dict[str, Any]) -> list[str]:
    """Identity and sandbox: the container's securityContext overrides the pod's, field by field."""
    args: list[str] = []
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) and uid is None:
        raise TranslationError("runAsNonRoot without runAsUser: the kubelet would check the image's USER; "
                               "set runAsUser so the check is explicit")
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) and uid == 0:
        raise TranslationError("runAsNonRoot with runAsUser 0: the kubelet refuses to start this container")
    if uid is not None:
        args += ["--user", f"{uid}:{gid}" if gid is not None else str(uid)]
    fs_group = pod_sc.get("fsGroup")
    for group in ([fs_group] if fs_group is not None else []) + list(pod_sc.get("supplementalGroups") or []):
        args += ["--group-add", str(group)]
    if sc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    if sc.get("privileged"):
        args.append("--privileged")
    caps = sc.get("capabilities") or {}
    for cap in caps.get("drop") or []:
        args += ["--cap-drop", cap]
    for cap in caps.get("add") or []:
        args += ["--cap-add", cap]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        args += ["--security-opt", "seccomp=unconfined"]
    elif seccomp != "RuntimeDefault":
        raise TranslationError(f"seccompProfile {seccomp} is not translated")
    return args


def resource_args(resources: dict[str, Any], drop_gpu: bool, notes: list[str]) -> list[str]:
    """Memory, CPU and GPU limits and requests, by the kubelet's formulas; a dropped GPU is noted."""
    args: list[str] = []
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    if "memory" in limits:
        memory = int(quantity(limits["memory"]))
        args += ["--memory", str(memory), "--memory-swap", str(memory)]
    if "cpu" in limits:
        args += ["--cpu-period", str(CPU_PERIOD_US),
                 "--cpu-quota", str(math.ceil(quantity(limits["cpu"]) * CPU_PERIOD_US))]
    if "cpu" in requests:
        # kubelet: shares = milliCPU * 1024 / 1000, at least 2.
        args += ["--cpu-shares", str(max(2, int(quantity(requests["cpu"]) * 1024)))]
    gpus = limits.get("nvidia.com/gpu")
    if gpus is not None:
        if drop_gpu:
            notes.append(f"GPU request (nvidia.com/gpu: {gpus}) dropped: the container runs without a GPU")
        else:
            args += ["--gpus", str(int(quantity(gpus)))]
    return args


def environment_and_command(c: dict[str, Any], pod: dict[str, Any],
                            extra_env: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """(run arguments for env, working directory and entrypoint; the arguments after the image)."""
    env = {**environment(c, pod), **(extra_env or {})}
    args: list[str] = []
    for name, value in env.items():
        args += ["--env", f"{name}={value}"]
    if c.get("workingDir"):
        args += ["--workdir", c["workingDir"]]
    command = [expand(str(a), env) for a in c.get("command") or []]
    cmd_args = [expand(str(a), env) for a in c.get("args") or []]
    if not command:
        return args, cmd_args
    # --entrypoint also clears the image's CMD, as `command:` does on a kubelet.
    return [*args, "--entrypoint", command[0]], command[1:] + cmd_args


def staged(args: list[str], staging: Path) -> list[str]:
    """The run arguments with the staging placeholder replaced by the real folder."""
    return [a.replace("@STAGING@", str(staging)) for a in args]
