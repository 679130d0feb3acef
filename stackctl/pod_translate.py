"""A rendered Kubernetes pod spec, translated into the `docker run` a kubelet's runtime would do.

Pure translation, no engine: `plan(docs, ...)` takes the kustomize output, finds the Deployment's
container and returns a `PodPlan` (docker run arguments, ConfigMap files to write, probes,
preStop, grace period). stackctl/podrun.py runs it; tests/unit/test_pod_translate.py checks it.

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
Not translated (no effect on a single container): the service-account token (the manifests turn it
off; a pod that wants one fails here), ephemeral-storage limits (kubelet eviction), /etc/hosts and
/dev/termination-log, the KUBERNETES_SERVICE_* variables, scheduling fields.
"""
from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

CPU_PERIOD_US = 100_000          # the kubelet's CFS period (cpu.cfs_period_us)
EMPTYDIR_MODE = "2777"           # kubelet: 0777 for a disk emptyDir, plus setgid for fsGroup
LABEL = "stackctl.podrun"        # on every container this module makes, so leftovers can be found


class TranslationError(ValueError):
    """The pod spec asks for something this translation cannot do faithfully."""


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

    def docker_run(self, staging: Path, docker: str = "docker") -> list[str]:
        """The full command line, bind sources under `staging` (where the files are written)."""
        return [docker, "run", *staged(self.run_args, staging), self.image, *self.command_args]


# ------------------------------------------------------------------------------------------------
# Quantities

_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
    "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18), "Ki": Decimal(2**10), "Mi": Decimal(2**20),
    "Gi": Decimal(2**30), "Ti": Decimal(2**40), "Pi": Decimal(2**50), "Ei": Decimal(2**60)}


def quantity(value: str | float) -> Decimal:
    """A Kubernetes resource quantity ("500m", "4Gi", "2", "1e3") as a number."""
    m = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?", str(value).strip())
    if not m:
        raise TranslationError(f"not a Kubernetes quantity: {value!r}")
    return Decimal(m.group(1)) * _SUFFIX[m.group(2) or ""]


# ------------------------------------------------------------------------------------------------
# Finding the pod

def find_deployment(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [d for d in docs if d.get("kind") == "Deployment" and d["metadata"]["name"] == name]
    if len(found) != 1:
        raise TranslationError(f"expected one Deployment {name!r} in the rendered manifests, found {len(found)}")
    return found[0]


def configmaps(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d.get("data") or {} for d in docs if d.get("kind") == "ConfigMap"}


# ------------------------------------------------------------------------------------------------
# Environment

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion: defined names are replaced, undefined ones stay as written,
    and $$ escapes a dollar."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR_REF.sub(sub, value)


def field_value(path: str, pod: dict[str, Any]) -> str:
    """A downward-API fieldRef, for the values that exist before the container runs."""
    meta = pod["metadata"]
    simple = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
              "metadata.uid": meta["uid"], "spec.nodeName": pod["nodeName"],
              "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default")}
    if path in simple:
        return str(simple[path])
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        values = meta.get(m.group(1)) or {}
        if m.group(2) not in values:
            raise TranslationError(f"fieldRef {path}: the pod has no such {m.group(1)[:-1]}")
        return str(values[m.group(2)])
    raise TranslationError(f"fieldRef {path} has no value before the pod sandbox exists "
                           "(status.* is set by the kubelet at run time); not translatable")


def resource_value(ref: dict[str, Any], resources: dict[str, Any]) -> str:
    """A resourceFieldRef: the container's request/limit divided by the divisor, rounded up."""
    kind, _, name = ref["resource"].partition(".")
    amount = (resources.get(kind) or {}).get(name)
    if amount is None:
        # The kubelet would fall back to the node's allocatable, which a container has no equal of.
        raise TranslationError(f"resourceFieldRef {ref['resource']}: the container sets no {ref['resource']}")
    divisor = quantity(ref.get("divisor", "1"))
    return str(math.ceil(quantity(amount) / divisor))


def environment(container: dict[str, Any], pod: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in container.get("envFrom") or []:
        raise TranslationError(f"envFrom ({entry}) is not translated")
    for entry in container.get("env") or []:
        name = entry["name"]
        if "value" in entry:
            env[name] = expand(str(entry["value"]), env)
            continue
        source = entry.get("valueFrom") or {}
        if "fieldRef" in source:
            env[name] = field_value(source["fieldRef"]["fieldPath"], pod)
        elif "resourceFieldRef" in source:
            env[name] = resource_value(source["resourceFieldRef"], container.get("resources") or {})
        elif source:
            raise TranslationError(f"env {name}: valueFrom {sorted(source)} is not translated")
        else:
            env[name] = ""
    return env


# ------------------------------------------------------------------------------------------------
# Volumes

def volume_args(container: dict[str, Any], spec: dict[str, Any], maps: dict[str, dict[str, str]],
                fs_group: int | None) -> tuple[list[str], dict[str, str], list[str]]:
    """(docker arguments, files to stage, notes) for every volumeMount of the container. Staged
    files live under volumes/<volume>/ of the caller's staging folder; the bind sources are written
    as `@STAGING@/...`, which the runner replaces with that folder."""
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    args: list[str] = []
    files: dict[str, str] = {}
    notes: list[str] = []
    empty_dir_mounts: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise TranslationError(f"volumeMount {mount['name']} names no volume of the pod")
        target = mount["mountPath"]
        if "emptyDir" in volume:
            if mount["name"] in empty_dir_mounts or mount.get("subPath"):
                # Two tmpfs mounts would be two separate file systems, not one shared volume.
                raise TranslationError(f"emptyDir {mount['name']} mounted twice or with subPath: not translated")
            empty_dir_mounts[mount["name"]] = target
            options = ["rw", "exec", "nosuid", "nodev", f"mode={EMPTYDIR_MODE}"]
            size = (volume["emptyDir"] or {}).get("sizeLimit")
            if size is not None:
                options.append(f"size={int(quantity(size))}")
            if fs_group is not None:
                options.append(f"gid={fs_group}")
            if (volume["emptyDir"] or {}).get("medium") not in (None, "", "Memory"):
                raise TranslationError(f"emptyDir {mount['name']}: medium {volume['emptyDir']['medium']} not translated")
            args += ["--tmpfs", f"{target}:{','.join(options)}"]
        elif "configMap" in volume:
            ref = volume["configMap"]
            data = maps.get(ref["name"])
            if data is None:
                raise TranslationError(f"volume {mount['name']}: ConfigMap {ref['name']} is not in the rendered output")
            items = {i["key"]: i["path"] for i in ref.get("items") or []} or {k: k for k in data}
            for key, path in items.items():
                if key not in data:
                    raise TranslationError(f"ConfigMap {ref['name']} has no key {key}")
                files[f"volumes/{mount['name']}/{path}"] = data[key]
            source = f"@STAGING@/volumes/{mount['name']}"
            if mount.get("subPath"):
                if mount["subPath"] not in items.values():
                    raise TranslationError(f"subPath {mount['subPath']} is not a file of ConfigMap {ref['name']}")
                source += "/" + mount["subPath"]
            # ConfigMap volumes are always read-only on a kubelet, whatever the mount says.
            args += ["--mount", f"type=bind,source={source},target={target},readonly"]
        else:
            kind = next((k for k in volume if k != "name"), "?")
            raise TranslationError(f"volume {mount['name']} ({kind}) is not translated; "
                                   "render without the component that adds it")
    return args, files, notes


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
         node_name: str = "podrun") -> PodPlan:
    """The docker run of one container of a rendered Deployment's pod. `host_ports` maps each
    containerPort to the 127.0.0.1 port to publish it on (every declared port must have one)."""
    dep = find_deployment(docs, deployment)
    template = dep["spec"]["template"]
    spec = template["spec"]
    chosen = [c for c in spec["containers"] if container in (None, c["name"])]
    if not chosen:
        raise TranslationError(f"Deployment {deployment} has no container {container!r}")
    c = chosen[0]
    if spec.get("initContainers"):
        raise TranslationError("init containers are not translated")
    if spec.get("automountServiceAccountToken") is not False:
        raise TranslationError("the pod mounts a service-account token (automountServiceAccountToken is not "
                               "false); a container outside a cluster has none to mount")
    pod_name = f"{dep['metadata']['name']}-podrun"
    pod = {"metadata": {"name": pod_name, "namespace": dep["metadata"].get("namespace", "default"),
                        "uid": str(uuid.uuid4()), "labels": template["metadata"].get("labels") or {},
                        "annotations": template["metadata"].get("annotations") or {}},
           "spec": spec, "nodeName": node_name}
    pod_sc = spec.get("securityContext") or {}
    sc = c.get("securityContext") or {}
    notes: list[str] = []

    args = ["--detach", "--name", container_name, "--hostname", pod_name, "--label", f"{LABEL}=1",
            "--restart", "no", "--pull", PULL[c.get("imagePullPolicy", "IfNotPresent")]]

    # Identity and sandbox: the container's securityContext overrides the pod's, field by field.
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

    # Resources.
    resources = c.get("resources") or {}
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

    # Environment, working directory, command.
    env = environment(c, pod)
    for name, value in env.items():
        args += ["--env", f"{name}={value}"]
    if c.get("workingDir"):
        args += ["--workdir", c["workingDir"]]
    command = [expand(str(a), env) for a in c.get("command") or []]
    cmd_args = [expand(str(a), env) for a in c.get("args") or []]
    if command:
        # --entrypoint also clears the image's CMD, as `command:` does on a kubelet.
        args += ["--entrypoint", command[0]]
        command_args = command[1:] + cmd_args
    else:
        command_args = cmd_args

    # Volumes.
    maps = configmaps(docs)
    v_args, files, v_notes = volume_args(c, spec, maps, fs_group)
    args += v_args
    notes += v_notes

    # Ports: every declared containerPort, published on loopback only.
    ports = container_ports(c)
    missing = sorted(set(ports.values()) - set(host_ports))
    if missing:
        raise TranslationError(f"no host port chosen for containerPort(s) {missing}")
    for port in sorted(set(ports.values())):
        args += ["--publish", f"127.0.0.1:{host_ports[port]}:{port}"]
    by_name = {name: host_ports[port] for name, port in ports.items()}

    probes = {kind: probe(c[kind], ports, host_ports) for kind in ("startupProbe", "readinessProbe", "livenessProbe")
              if kind in c}
    return PodPlan(container_name=container_name, pod_name=pod_name, image=c["image"], run_args=args,
                   command_args=command_args, files=files, file_group=fs_group, host_ports=by_name,
                   probes=probes, pre_stop=(c.get("lifecycle") or {}).get("preStop"),
                   grace_seconds=int(spec.get("terminationGracePeriodSeconds", 30)), notes=notes)


def staged(args: list[str], staging: Path) -> list[str]:
    """The run arguments with the staging placeholder replaced by the real folder."""
    return [a.replace("@STAGING@", str(staging)) for a in args]
