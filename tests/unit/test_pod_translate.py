"""The rendered Kubernetes pod spec -> `docker run` translation (stackctl.pod.pod_translate), no engine.

Each test reads the real rendered overlays (kubectl kustomize) and checks one promise of the
translation against the manifest it came from, so a manifest change is followed here too.
"""
from __future__ import annotations

import copy
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from stackctl import paths
from stackctl.deploy import k8s
from stackctl.pod import pod_translate as pt

PORTS = {7070: 27070, 8080: 28080, 8081: 28081, 8082: 28082}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {overlay: [d for d in yaml.safe_load_all(k8s.render(overlay)) if d] for overlay in k8s.overlays()}


def pod_of(docs) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = pt.find_deployment(docs, "torchserve")["spec"]["template"]["spec"]
    return spec, next(c for c in spec["containers"] if c["name"] == "torchserve")


def option_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def env_of(args: list[str]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in option_values(args, "--env"))


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_identity_and_sandbox_follow_the_security_contexts(rendered, overlay):
    spec, c = pod_of(rendered[overlay])
    args = pt.plan(rendered[overlay], PORTS, drop_gpu=True).run_args
    pod_sc, sc = spec["securityContext"], c["securityContext"]
    assert option_values(args, "--user") == [f"{pod_sc['runAsUser']}:{pod_sc['runAsGroup']}"]
    assert option_values(args, "--group-add") == [str(pod_sc["fsGroup"])]
    assert ("--read-only" in args) is sc["readOnlyRootFilesystem"] is True
    assert option_values(args, "--cap-drop") == sc["capabilities"]["drop"] == ["ALL"]
    assert not option_values(args, "--cap-add") and "--privileged" not in args
    assert option_values(args, "--security-opt") == ["no-new-privileges"]   # RuntimeDefault = Docker's default


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_limits_use_the_kubelets_cgroup_formulas(rendered, overlay):
    _, c = pod_of(rendered[overlay])
    args = pt.plan(rendered[overlay], PORTS, drop_gpu=True).run_args
    limits, requests = c["resources"]["limits"], c["resources"]["requests"]
    memory = str(int(pt.quantity(limits["memory"])))
    assert option_values(args, "--memory") == option_values(args, "--memory-swap") == [memory]
    assert option_values(args, "--cpu-period") == ["100000"]
    assert option_values(args, "--cpu-quota") == [str(int(pt.quantity(limits["cpu"]) * 100000))]
    assert option_values(args, "--cpu-shares") == [str(int(pt.quantity(requests["cpu"]) * 1024))]
    assert "--cpus" not in args, "--cpus refuses more CPUs than the host has; the kubelet sets a quota"


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_env_values_and_resource_field_refs_are_resolved(rendered, overlay):
    _, c = pod_of(rendered[overlay])
    env = env_of(pt.plan(rendered[overlay], PORTS, drop_gpu=True).run_args)
    for entry in c["env"]:
        if "value" in entry:
            assert env[entry["name"]] == entry["value"]
    # OMP_NUM_THREADS comes from limits.cpu (divisor 1), rounded up as the kubelet does.
    assert env["OMP_NUM_THREADS"] == str(int(pt.quantity(c["resources"]["limits"]["cpu"])))
    assert list(env) == [e["name"] for e in c["env"]], "order kept: later $(VAR)s may use earlier ones"


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_every_emptydir_is_an_exec_tmpfs_with_its_size_and_fsgroup(rendered, overlay):
    spec, c = pod_of(rendered[overlay])
    tmpfs = {t.split(":", 1)[0]: t.split(":", 1)[1].split(",")
             for t in option_values(pt.plan(rendered[overlay], PORTS).run_args, "--tmpfs")}
    empty_dirs = {v["name"]: v["emptyDir"] for v in spec["volumes"] if "emptyDir" in v}
    mounted = {m["mountPath"]: m["name"] for m in c["volumeMounts"] if m["name"] in empty_dirs}
    assert set(tmpfs) == set(mounted) >= {"/tmp", "/app/logs"}
    for path, options in tmpfs.items():
        # Docker's --tmpfs is noexec by default; kubelet emptyDirs are exec, and TorchServe on a
        # noexec /tmp silently falls back from epoll and Unix sockets to NIO and TCP.
        assert "exec" in options and "noexec" not in options, path
        assert f"size={int(pt.quantity(empty_dirs[mounted[path]]['sizeLimit']))}" in options
        assert f"gid={spec['securityContext']['fsGroup']}" in options and "mode=2777" in options


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_configmap_mounts_are_read_only_files_of_the_rendered_configmap(rendered, overlay, tmp_path):
    _, c = pod_of(rendered[overlay])
    p = pt.plan(rendered[overlay], PORTS)
    mounts = [dict(kv.split("=", 1) if "=" in kv else (kv, "") for kv in m.split(","))
              for m in option_values(p.docker_run(tmp_path), "--mount")]
    config_mounts = [m for m in c["volumeMounts"] if m["name"] == "config"]
    assert len(mounts) == len(config_mounts)
    for m, manifest in zip(mounts, config_mounts, strict=True):
        assert m["type"] == "bind" and "readonly" in m and m["target"] == manifest["mountPath"]
        assert m["source"] == str(tmp_path / "volumes" / "config" / manifest["subPath"])
    # The staged files are the repository's config files, byte for byte (via the ConfigMap).
    for rel, content in p.files.items():
        assert content.encode() == (paths.ROOT / "config" / Path(rel).name).read_bytes()


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_image_command_ports_and_probes_come_from_the_manifest(rendered, overlay):
    _, c = pod_of(rendered[overlay])
    p = pt.plan(rendered[overlay], PORTS, drop_gpu=True)
    assert p.image == c["image"] == f"torchserve-stack/torchserve:{overlay}"
    assert option_values(p.run_args, "--pull") == ["missing"]        # IfNotPresent
    assert "--entrypoint" not in p.run_args and p.command_args == [], "the image's own ENTRYPOINT and CMD"
    assert option_values(p.run_args, "--workdir") == [c["workingDir"]]
    # Every declared port; management (8081) is not one: it listens on the pod's loopback only.
    assert sorted(option_values(p.run_args, "--publish")) == [f"127.0.0.1:{h}:{cp}" for cp, h in sorted(PORTS.items())
                                                               if cp != 8081]
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        raw, probe = c[kind], p.probes[kind]
        assert (probe.period, probe.timeout, probe.failure_threshold, probe.initial_delay) == (
            raw["periodSeconds"], raw["timeoutSeconds"], raw["failureThreshold"], raw.get("initialDelaySeconds", 0))
    assert p.probes["readinessProbe"].exec_command == tuple(c["readinessProbe"]["exec"]["command"])
    assert p.probes["livenessProbe"].exec_command == tuple(c["livenessProbe"]["exec"]["command"])
    assert p.pre_stop == c["lifecycle"]["preStop"] and p.grace_seconds == 120


def test_an_http_probe_reaches_its_named_port_through_the_published_one(rendered):
    docs = variant(rendered, lambda s, c: c.__setitem__("livenessProbe", {"httpGet": {"path": "/ping", "port": "inference"},
                                                                         "periodSeconds": 20}))
    live = pt.plan(docs, PORTS).probes["livenessProbe"]
    assert (live.kind, live.host_port, live.path, live.period) == ("httpGet", PORTS[8080], "/ping", 20)


def test_gpu_request_becomes_gpus_unless_dropped(rendered):
    kept = pt.plan(rendered["gpu"], PORTS)
    assert option_values(kept.run_args, "--gpus") == ["1"] and not kept.notes
    dropped = pt.plan(rendered["gpu"], PORTS, drop_gpu=True)
    assert "--gpus" not in dropped.run_args and "nvidia.com/gpu" in dropped.notes[0]
    assert "--gpus" not in pt.plan(rendered["cpu"], PORTS).run_args


def test_the_command_line_is_one_docker_run(rendered, tmp_path):
    line = pt.plan(rendered["cpu"], PORTS).docker_run(tmp_path, docker="docker")
    assert line[:2] == ["docker", "run"] and "@STAGING@" not in shlex.join(line)
    assert line.index("torchserve-stack/torchserve:cpu") == len(line) - 1


# ------------------------------------------------------------------------------------------------
# What the translation refuses, or does as the kubelet does, on hand-made variations

def variant(rendered, change) -> list[dict[str, Any]]:
    docs = copy.deepcopy(rendered["cpu"])
    spec, c = pod_of(docs)
    change(spec, c)
    return docs


def test_command_args_and_var_expansion_follow_kubernetes_rules(rendered):
    def change(spec, c):
        c["env"] += [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                     {"name": "GREETING", "value": "hi $(POD) $(UNDEFINED) $$(POD)"}]
        c["command"] = ["torchserve", "--foreground"]
        c["args"] = ["--name", "$(POD)"]
    p = pt.plan(variant(rendered, change), PORTS)
    env = env_of(p.run_args)
    assert env["POD"] == p.pod_name
    assert env["GREETING"] == f"hi {p.pod_name} $(UNDEFINED) $(POD)"
    assert option_values(p.run_args, "--entrypoint") == ["torchserve"]
    assert p.command_args == ["--foreground", "--name", p.pod_name]


@pytest.mark.parametrize("change,message", [
    (lambda s, c: c["env"].append({"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}),
     "status"),
    (lambda s, c: c["env"].append({"name": "K", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}),
     "secretKeyRef"),
    (lambda s, c: (s["volumes"].append({"name": "m", "persistentVolumeClaim": {"claimName": "m"}}),
                   c["volumeMounts"].append({"name": "m", "mountPath": "/m"})), "persistentVolumeClaim"),
    (lambda s, c: s.__setitem__("automountServiceAccountToken", True), "service-account token"),
    (lambda s, c: c["securityContext"].__setitem__("runAsUser", 0), "runAsUser 0"),
    (lambda s, c: c["resources"]["limits"].pop("cpu"), "limits.cpu"),
])
def test_what_cannot_be_translated_faithfully_fails_clearly(rendered, change, message):
    with pytest.raises(pt.TranslationError, match=message):
        pt.plan(variant(rendered, change), PORTS)


def test_model_oci_init_container_runs_first_and_shares_its_volumes():
    """components/model-oci's init container becomes a foreground `docker run` before the server's,
    with the manifest's sandbox; the emptyDirs both mount (the model store, /tmp) are one named
    tmpfs volume each, read-only where the server's mount says so; the optional registry Secret,
    absent from the rendered output, is an empty read-only folder, as a kubelet mounts it."""
    docs = [d for d in yaml.safe_load_all(k8s.render("cpu", ["model-oci"])) if d]
    plan = pt.plan(docs, PORTS, container_name="pr", extra_env={"MODEL_REGISTRY_PLAIN_HTTP": "1"})
    (init,) = plan.init
    spec, server = pod_of(docs)
    raw = spec["initContainers"][0]
    assert init.name == raw["name"] == "pull-models" and init.image == server["image"]
    assert init.command_args == raw["command"][1:] and option_values(init.run_args, "--entrypoint") == ["python"]
    assert "--detach" not in init.run_args and option_values(init.run_args, "--network") == ["host"]
    assert option_values(init.run_args, "--user") == ["10001:10001"] and "--read-only" in init.run_args
    assert option_values(init.run_args, "--cap-drop") == ["ALL"]
    assert env_of(init.run_args)["MODEL_REGISTRY_PLAIN_HTTP"] == "1" == env_of(plan.run_args)["MODEL_REGISTRY_PLAIN_HTTP"]
    volumes = dict(plan.volumes)
    assert set(volumes) == {"pr-model-store", "pr-tmp"}
    for options in volumes.values():
        o = option_values(options, "--opt")
        assert "type=tmpfs" in o and any(x.startswith("o=") and "exec" in x[2:].split(",") and "gid=10001" in x for x in o)
    init_mounts = option_values(init.run_args, "--mount")
    assert "type=volume,source=pr-model-store,target=/models" in init_mounts
    assert "type=volume,source=pr-tmp,target=/tmp" in init_mounts
    assert any(m.startswith("type=bind,") and m.endswith("target=/etc/registry-auth/.docker,readonly")
               for m in init_mounts)
    server_mounts = option_values(plan.run_args, "--mount")
    assert "type=volume,source=pr-model-store,target=/app/model_store,readonly" in server_mounts
    assert "type=volume,source=pr-tmp,target=/tmp" in server_mounts
    # Not shared: still the server's own tmpfs.
    assert [t.split(":")[0] for t in option_values(plan.run_args, "--tmpfs")] == ["/app/logs"]
    assert "models.txt" in "".join(plan.files)


def test_a_sidecar_or_a_required_secret_is_refused():
    docs = [d for d in yaml.safe_load_all(k8s.render("cpu", ["model-oci"])) if d]
    sidecar = variant({"cpu": docs}, lambda s, c: s["initContainers"][0].__setitem__("restartPolicy", "Always"))
    with pytest.raises(pt.TranslationError, match="sidecar"):
        pt.plan(sidecar, PORTS)
    required = variant({"cpu": docs}, lambda s, c: next(v for v in s["volumes"] if v["name"] == "registry-auth")[
        "secret"].__setitem__("optional", False))
    with pytest.raises(pt.TranslationError, match="registry-auth"):
        pt.plan(required, PORTS)


@pytest.mark.parametrize("text,value", [("2", 2), ("500m", 0.5), ("4Gi", 4 * 2**30), ("1G", 10**9), ("1e3", 1000)])
def test_quantities(text, value):
    assert pt.quantity(text) == pytest.approx(value)
