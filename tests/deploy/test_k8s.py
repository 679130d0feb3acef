"""Kubernetes manifests, proven without a cluster: every overlay × component combination renders
with `kubectl kustomize`, every object passes `kubernetes-validate --strict`, the monitoring objects
pass their pinned CRD schemas, and the policies the stack promises hold in the rendered output."""
from __future__ import annotations

import copy
import itertools
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from stackctl import paths, tools
from stackctl.catalog.specs import load_specs
from stackctl.deploy import k8s, k8s_monitoring
from stackctl.serve import front_door, wait_bounds
from tests import crd_schema as crd_schemas
from tests.crd_schema import undeclared_fields

ROOT = paths.ROOT
DATA = Path(__file__).parent / "data" / "crds"
KUBERNETES_VERSIONS = ["1.37.0", "1.33.0"]
GRPC_PORT = 7070  # the Open Inference Protocol's gRPC port (issue 25's contract)  # newest the pinned kubernetes-validate knows; oldest we support
VERSION_LABEL = "app.kubernetes.io/version"
REQUIRED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/part-of", VERSION_LABEL,
                   "app.kubernetes.io/component")
ADAPTER_VALUES = ROOT / "k8s" / "prometheus-adapter" / "values.yaml"
COMBINATIONS = [(overlay, combo) for overlay in k8s.overlays()
                for n in range(len(k8s.components()) + 1)
                for combo in itertools.combinations(k8s.components(), n)]
ALL = {overlay: tuple(k8s.components()) for overlay in k8s.overlays()}


def _require_tool(name: str) -> str:
    try:
        return tools.find(name, "`make setup` installs it")
    except tools.ToolMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def renders() -> dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]]:
    _require_tool("kubectl")
    return {(overlay, combo): [d for d in yaml.safe_load_all(k8s.render(overlay, combo)) if d]
            for overlay, combo in COMBINATIONS}


def objects(renders, overlay: str, combo: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    return renders[(overlay, ALL[overlay] if combo is None else combo)]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_specs(docs) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in docs:
        if d["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            yield f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]


def server_container(docs) -> dict[str, Any]:
    deployment = one(docs, "Deployment", "torchserve")
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "torchserve")


def longest_response_timeout() -> int:
    props = dict(line.split("=", 1) for line in (ROOT / "config" / "config.properties").read_text().splitlines()
                 if "=" in line and not line.lstrip().startswith("#"))
    timeouts = [int(props.get("default_response_timeout", 120))]
    timeouts += [s.serving.response_timeout for s in load_specs() if "responseTimeout" in s.serving.given]
    return max(timeouts)


# ------------------------------------------------------------------------------------------------
# Rendering and schemas

@pytest.mark.parametrize("overlay,combo", COMBINATIONS, ids=[f"{o}+{'+'.join(c) or 'none'}" for o, c in COMBINATIONS])
def test_combination_renders_with_labels_and_namespace(renders, overlay, combo):
    docs = renders[(overlay, combo)]
    namespace = one(docs, "Namespace")["metadata"]["name"]
    for d in docs:
        where = f"{d['kind']}/{d['metadata']['name']}"
        labels = d["metadata"].get("labels") or {}
        missing = [k for k in REQUIRED_LABELS if k not in labels and d["kind"] != "Namespace"]
        assert not missing, f"{where} lacks labels {missing}"
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") == namespace, f"{where} is not in namespace {namespace}"


def selectors(d: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = d.get("spec") or {}
    for key in ("selector", "podSelector"):
        if isinstance(spec.get(key), dict):
            yield spec[key].get("matchLabels", spec[key])
    for rule in spec.get("ingress", []) + spec.get("egress", []):
        for peer in rule.get("from", []) + rule.get("to", []):
            for key in ("podSelector", "namespaceSelector"):
                if key in peer:
                    yield peer[key].get("matchLabels") or {}
    for constraint in ((spec.get("template") or {}).get("spec") or {}).get("topologySpreadConstraints", []):
        yield constraint["labelSelector"].get("matchLabels") or {}


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_version_label_is_kept_out_of_selectors(renders, overlay):
    for d in objects(renders, overlay):
        for sel in selectors(d):
            assert VERSION_LABEL not in sel, f"{d['kind']}/{d['metadata']['name']} selects on the version label"


def images(docs) -> set[str]:
    return {c["image"] for _, spec in pod_specs(docs) for c in spec.get("initContainers", []) + spec["containers"]}


# The image contract with docker/: `make build` tags these on the host, `make push REGISTRY=r
# VERSION=v` pushes r/<name>:v-gpu|v-cpu and r/torchserve-stack/locust:v.
LOCAL_IMAGES = {"gpu": {"torchserve-stack/torchserve:gpu", "torchserve-stack/locust:latest"},
                "cpu": {"torchserve-stack/torchserve:cpu", "torchserve-stack/locust:latest"}}
PUSHED_IMAGES = {"gpu": {"reg.example:5000/team/torchserve-stack/torchserve:1.2.3-gpu",
                         "reg.example:5000/team/torchserve-stack/locust:1.2.3"},
                 "cpu": {"reg.example:5000/team/torchserve-stack/torchserve:1.2.3-cpu",
                         "reg.example:5000/team/torchserve-stack/locust:1.2.3"}}


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_overlays_default_to_the_images_make_build_tags_locally(renders, overlay):
    docs = objects(renders, overlay)
    assert images(docs) == LOCAL_IMAGES[overlay]
    # The version label is the release, as in pyproject.toml.
    release = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert one(docs, "Deployment")["metadata"]["labels"][VERSION_LABEL] == release


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_registry_and_version_deploy_what_make_push_pushed(overlay):
    docs = [d for d in yaml.safe_load_all(k8s.render(overlay, ["loadtest"], registry="reg.example:5000/team/",
                                                        version="1.2.3")) if d]
    assert images(docs) == PUSHED_IMAGES[overlay]
    assert {d["metadata"]["labels"][VERSION_LABEL] for d in docs if d["kind"] != "Namespace"} == {"1.2.3"}
    with pytest.raises(k8s.RenderError, match="not a valid image tag"):
        k8s.render(overlay, version="1.2:3")


def test_compose_files_use_the_same_image_names():
    """One name everywhere: compose runs the very tags the overlays deploy."""
    # Read as text: compose files use tags (!reset) that yaml.safe_load refuses.
    named = {m for path in ROOT.glob("docker-compose*.yml")
             for m in re.findall(r"^\s*image:\s*[\"']?(torchserve-stack/[^\s\"']+)", path.read_text(), re.MULTILINE)}
    assert named and named <= LOCAL_IMAGES["gpu"] | LOCAL_IMAGES["cpu"], named


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay,combo", [(o, ()) for o in k8s.overlays()] + [(o, ALL[o]) for o in k8s.overlays()])
def test_builtin_objects_pass_kubernetes_validate_strict(renders, tmp_path, overlay, combo, version):
    validate = _require_tool("kubernetes-validate")
    docs = [d for d in renders[(overlay, combo)] if "monitoring.coreos.com" not in d["apiVersion"]]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    proc = subprocess.run([validate, "--strict", "--kubernetes-version", version, str(manifest)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("passed for resource") == len(docs), proc.stdout + proc.stderr


def test_kubernetes_validate_strict_rejects_an_unknown_field(renders, tmp_path):
    """The validator is not a no-op: a misspelt probe field fails it."""
    validate = _require_tool("kubernetes-validate")
    deployment = copy.deepcopy(one(objects(renders, "gpu"), "Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenessprobe"] = container.pop("livenessProbe")
    manifest = tmp_path / "typo.yaml"
    manifest.write_text(yaml.safe_dump(deployment))
    proc = subprocess.run([validate, "--strict", "--kubernetes-version", KUBERNETES_VERSIONS[0], str(manifest)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "livenessprobe" in proc.stdout + proc.stderr


def crd_schema(kind: str) -> dict[str, Any]:
    return crd_schemas.crd_schema(DATA, kind)


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PrometheusRule"])
def test_monitoring_objects_match_their_crd_schema(renders, kind):
    schema = crd_schema(kind)
    for overlay in k8s.overlays():
        found = [d for d in objects(renders, overlay) if d["kind"] == kind]
        assert found
        for obj in found:
            # No meta-schema check: the CRDs carry Go regexes (e.g. "^(?i)(abort|warn)?$") that
            # Python's re rejects; a pattern is only compiled when an object uses that field.
            jsonschema.Draft7Validator(schema).validate(obj)
            assert not undeclared_fields(obj, schema), f"{kind}/{obj['metadata']['name']}: fields unknown to the CRD"


def test_crd_check_rejects_an_unknown_field(renders):
    schema = crd_schema("ServiceMonitor")
    monitor = copy.deepcopy(one(objects(renders, "gpu"), "ServiceMonitor", "torchserve"))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    assert undeclared_fields(monitor, schema) == [".spec.endpoints[0].intervall"]


# ------------------------------------------------------------------------------------------------
# Workload policy

@pytest.mark.parametrize("overlay", k8s.overlays())
def test_server_has_all_three_probes_with_the_right_meaning(renders, overlay):
    c = server_container(objects(renders, overlay))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe in c, f"torchserve container has no {probe}"
    ready_cmd = ["python", "-m", "stackctl", "ready", "--management", "http://127.0.0.1:8081"]
    # Ready = every model has had a READY worker once, then the management API answers with the
    # same models (stackctl/serve/readiness.py): the same check as the image's HEALTHCHECK.
    assert c["readinessProbe"]["exec"]["command"] == ready_cmd
    assert c["startupProbe"]["exec"]["command"] == ready_cmd
    # Alive = the same lenient check after start: the frontend answers, every model registered.
    # Not /ping, which turns unhealthy when one model's workers keep failing (maxRetryTimeoutInSec)
    # and would restart a pod that still serves the others (issue 29).
    live = c["livenessProbe"]
    assert live["exec"]["command"] == ready_cmd and "httpGet" not in live
    assert live["periodSeconds"] * live["failureThreshold"] >= 2 * longest_response_timeout()
    start = c["startupProbe"]
    assert start["periodSeconds"] * start["failureThreshold"] >= 120


def test_startup_probe_comment_states_its_arithmetic():
    text = (ROOT / "k8s" / "base" / "torchserve-deployment.yaml").read_text()
    m = re.search(r"failureThreshold (\d+) × periodSeconds (\d+) s = (\d+) s", text)
    assert m, "the startupProbe comment must show failureThreshold × periodSeconds = budget"
    threshold, period, total = map(int, m.groups())
    assert threshold * period == total
    probe = yaml.safe_load(text)["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert (probe["failureThreshold"], probe["periodSeconds"]) == (threshold, period)


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_drain_outlasts_the_longest_response_timeout(renders, overlay):
    docs = objects(renders, overlay)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    c = server_container(docs)
    longest = longest_response_timeout()
    pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop >= longest + 5, "preStop must cover endpoint propagation + the longest responseTimeout"
    assert pod["terminationGracePeriodSeconds"] > pre_stop + 10 > longest
    # After the preStop, the front door's graceful stop (as long as it may hold a request) and then
    # TorchServe's own shutdown (~10 s) must fit before the kubelet's SIGKILL.
    door_stop = front_door_stop_wait_from_specs()
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + door_stop + 10, (pre_stop, door_stop)


def front_door_stop_wait_from_specs() -> int:
    default = front_door.default_response_timeout()
    bounds = {s.name: wait_bounds.from_serving(s.name, s.serving, default) for s in load_specs()}
    return wait_bounds.longest(bounds, default) + front_door.STOP_MARGIN_S


def test_the_grace_period_comment_states_its_arithmetic():
    text = (ROOT / "k8s" / "base" / "torchserve-deployment.yaml").read_text()
    m = re.search(r"preStop sleep \((\d+) s\) \+ the front door's graceful stop \(at most (\d+) s: the longest wait\s*#\s*"
                  r"bound, (\d+) s, \+ (\d+) s;.*?TorchServe's own shutdown \(~(\d+) s\)\s*#\s*= (\d+) s", text, re.DOTALL)
    assert m, "the terminationGracePeriodSeconds comment must show its sum"
    pre_stop, door, bound, margin, server, total = map(int, m.groups())
    pod = yaml.safe_load(text)["spec"]["template"]["spec"]
    assert pre_stop == pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert door == bound + margin == front_door_stop_wait_from_specs() and margin == front_door.STOP_MARGIN_S
    assert pre_stop + door + server == total < pod["terminationGracePeriodSeconds"]


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_every_container_has_requests_limits_and_a_locked_down_security_context(renders, overlay):
    for where, spec in pod_specs(objects(renders, overlay)):
        pod_sc = spec.get("securityContext") or {}
        assert spec.get("automountServiceAccountToken") is False, where
        for c in spec.get("initContainers", []) + spec["containers"]:
            name = f"{where}/{c['name']}"
            res = c.get("resources") or {}
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in (res.get(kind) or {}), f"{name} has no {kind}.{resource}"
            sc = c.get("securityContext") or {}
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, name
            assert sc.get("readOnlyRootFilesystem") is True, name
            assert sc.get("allowPrivilegeEscalation") is False, name
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], name
            assert not sc.get("capabilities", {}).get("add"), name
            seccomp = sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}
            assert seccomp.get("type") == "RuntimeDefault", name


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_torchserve_writes_only_to_mounted_emptydirs(renders, overlay):
    docs = objects(renders, overlay)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    c = server_container(docs)
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = [m["mountPath"] for m in c["volumeMounts"] if m["name"] in empty_dirs and not m.get("readOnly")]
    assert {"/tmp", "/app/logs"} <= set(writable)
    env = {e["name"]: e.get("value") for e in c["env"]}
    for var in ("LOG_LOCATION", "METRICS_LOCATION", "TEMP", "HOME"):
        assert any(env[var] == w or env[var].startswith(w + "/") for w in writable), f"{var}={env[var]} is read-only"
    assert "command" not in c and "args" not in c, "run the image's own `torchserve --foreground` command"
    # Token auth writes key_file.json into the working directory; metrics.yaml is then found by
    # its absolute path.
    assert c["workingDir"] in writable and env["TS_METRICS_CONFIG"].startswith("/app/config/")


def test_gpu_only_in_the_gpu_overlay(renders):
    for (overlay, _), docs in renders.items():
        pod = one(docs, "Deployment")["spec"]["template"]["spec"]
        c = server_container(docs)
        gpus = [spec for _, spec in pod_specs(docs) for cc in spec["containers"]
                if "nvidia.com/gpu" in str(cc.get("resources"))]
        if overlay == "gpu":
            assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
            # The GPU request alone selects GPU nodes; a GFD-only label would leave pods Pending
            # on clusters without GPU Feature Discovery (issue 29).
            assert "nodeSelector" not in pod
            assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
            assert len(gpus) == 1, "only the TorchServe pod asks for a GPU"
        else:
            assert not gpus and "nodeSelector" not in pod and "tolerations" not in pod
        # No silent CPU fallback where a GPU is requested (handlers/device_check.py); none in cpu.
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env.get("STACK_REQUIRE_CUDA") == ("1" if overlay == "gpu" else None), (overlay, env)


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_replicas_spread_over_nodes_and_guarded_by_a_pdb(renders, overlay):
    docs = objects(renders, overlay)
    deployment = one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert "replicas" not in deployment["spec"], "with components/autoscaling the HPA owns the replica count"
    assert one(objects(renders, overlay, ()), "Deployment")["spec"]["replicas"] == 2
    keys = {t["topologyKey"] for t in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]}
    assert "kubernetes.io/hostname" in keys
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable")


def test_rolling_update_needs_no_spare_gpu(renders):
    """GPU: stop one pod, then start its successor on the freed GPU; CPU: surge, never fewer ready."""
    gpu = one(objects(renders, "gpu"), "Deployment")["spec"]["strategy"]["rollingUpdate"]
    cpu = one(objects(renders, "cpu"), "Deployment")["spec"]["strategy"]["rollingUpdate"]
    assert gpu == {"maxSurge": 0, "maxUnavailable": 1}
    assert cpu == {"maxSurge": 1, "maxUnavailable": 0}


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_services_are_cluster_internal(renders, overlay):
    docs = objects(renders, overlay, tuple(c for c in ALL[overlay] if c != "external-inference"))
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    ports = {}
    for svc in (d for d in docs if d["kind"] == "Service"):
        assert svc["spec"]["type"] == "ClusterIP", f"{svc['metadata']['name']} must not be exposed by default"
        assert svc["spec"]["selector"].items() <= pod_labels.items()
        for p in svc["spec"]["ports"]:
            ports[p["port"]] = svc["metadata"]["name"]
    # No Service for management: it listens on the pod's loopback only (closed by default).
    assert ports == {8080: "torchserve", GRPC_PORT: "torchserve", 8082: "torchserve-metrics"}
    grpc = next(p for svc in docs if svc["kind"] == "Service" for p in svc["spec"]["ports"] if p["port"] == GRPC_PORT)
    assert grpc["appProtocol"] == "kubernetes.io/h2c", "gRPC is HTTP/2 cleartext: tell ingresses and meshes"


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_management_api_binds_loopback_in_the_pod(renders, overlay):
    """Closed by default (issue 29): the management API is on the pod's loopback, with no port
    declared for a Service or policy to open; the exec probes ask it there."""
    docs = objects(renders, overlay)
    c = server_container(docs)
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["TS_MANAGEMENT_ADDRESS"] == "http://127.0.0.1:8081"
    assert {p["containerPort"] for p in c["ports"]} == {8080, GRPC_PORT, 8082}
    assert env["OIP_GRPC_ADDRESS"] == f"0.0.0.0:{GRPC_PORT}", "gRPC is inference: every interface, like 8080"
    for probe in ("startupProbe", "readinessProbe"):
        assert c[probe]["exec"]["command"][-1] == env["TS_MANAGEMENT_ADDRESS"]


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_network_policy_closes_management_and_metrics(renders, overlay):
    docs = objects(renders, overlay)
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    policy = one(docs, "NetworkPolicy", "torchserve")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert policy["spec"]["egress"] == [], "the server needs no outbound traffic"
    peers_by_port: dict[str, list[dict]] = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            peers_by_port.setdefault(port["port"], []).extend(rule["from"])
    assert set(peers_by_port) == {"inference", "grpc", "metrics"}, "management listens on loopback: no rule admits it"
    assert peers_by_port["grpc"] == peers_by_port["inference"], "gRPC inference is admitted exactly as REST inference"
    for port in ("metrics",):
        for peer in peers_by_port[port]:
            # same namespace (podSelector only) or a namespace named explicitly
            assert "namespaceSelector" not in peer or peer["namespaceSelector"].get("matchLabels"), (port, peer)
    # Every pod of every workload has a NetworkPolicy.
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            labels = d["spec"]["template"]["metadata"]["labels"]
            assert any(p["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
                       for p in docs if p["kind"] == "NetworkPolicy"), f"{d['kind']}/{d['metadata']['name']}"


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_external_inference_puts_tls_and_authentication_in_front(renders, overlay):
    """Closed by default (issue 29): the external component is an Ingress that terminates TLS and
    asks for authentication, routes the inference API only, and opens no Service or CIDR."""
    docs = objects(renders, overlay, ("external-inference",))
    services = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Service"}
    assert {s["type"] for s in services.values()} == {"ClusterIP"} and "torchserve-management" not in services
    ingress = one(docs, "Ingress", "torchserve")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/auth-type"] == "basic"
    assert annotations["nginx.ingress.kubernetes.io/auth-secret"]
    assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert all(t["secretName"] for t in ingress["spec"]["tls"]) and hosts <= {h for t in ingress["spec"]["tls"] for h in t["hosts"]}
    backends = {(p["backend"]["service"]["name"], p["backend"]["service"]["port"]["name"])
                for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert backends == {("torchserve", "inference")}
    # No Secret ships: the user creates both (nothing secret in the repository).
    assert not [d for d in docs if d["kind"] == "Secret"]
    # The body limit and timeout follow the server's own.
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == str(longest_response_timeout() + 5)
    for d in docs:
        if d["kind"] == "NetworkPolicy":
            assert "ipBlock" not in str(d["spec"]), d["metadata"]["name"]


def render_with(tmp_path: Path, overlay: str, component_path: str) -> list[dict[str, Any]]:
    """An overlay with a nested component listed (above release), as its README says to."""
    for tree in k8s.KUSTOMIZE_TREES:
        shutil.copytree(ROOT / tree, tmp_path / tree, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    path = tmp_path / "k8s" / "overlays" / overlay / "kustomization.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["components"] = [f"../../components/{component_path}", *doc["components"]]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return [d for d in yaml.safe_load_all(k8s.kustomize(path.parent)) if d]


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_external_loadbalancer_admits_outside_traffic_to_inference_only(tmp_path, overlay):
    docs = render_with(tmp_path, overlay, "external-inference/loadbalancer")
    services = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Service"}
    assert services["torchserve"]["type"] == "LoadBalancer"
    assert services["torchserve"]["externalTrafficPolicy"] == "Local", "keeps client addresses for the ipBlock"
    assert services["torchserve-metrics"]["type"] == "ClusterIP" and "torchserve-management" not in services
    policy = one(docs, "NetworkPolicy", "torchserve-external")
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"], "must not open egress"
    for rule in policy["spec"]["ingress"]:
        assert [p["port"] for p in rule["ports"]] == ["inference"]
        assert all(set(peer) == {"ipBlock"} for peer in rule["from"])
        # Closed as shipped: the documentation range (TEST-NET-1) until the user sets theirs.
        assert [peer["ipBlock"]["cidr"] for peer in rule["from"]] == ["192.0.2.0/24"]


def test_namespace_enforces_the_restricted_pod_security_standard(renders):
    for overlay in k8s.overlays():
        ns = one(objects(renders, overlay), "Namespace")
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


# ------------------------------------------------------------------------------------------------
# Autoscaling

def adapter_rules() -> list[dict[str, Any]]:
    return yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["custom"]


def test_plain_overlay_has_no_hpa_and_autoscaling_brings_monitoring(renders):
    """A plain `kubectl apply -k` must not leave an HPA stuck at FailedGetPodsMetric."""
    for overlay in k8s.overlays():
        assert not [d for d in objects(renders, overlay, ()) if d["kind"] == "HorizontalPodAutoscaler"]
        alone = [d for d in yaml.safe_load_all(k8s.render(overlay, ["autoscaling"])) if d]
        assert {d["kind"] for d in alone} >= {"HorizontalPodAutoscaler", "ServiceMonitor"}
    readme = (ROOT / "k8s" / "components" / "autoscaling" / "README.md").read_text()
    assert "prometheus-adapter" in readme and "components/monitoring" in readme


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_hpa_scales_on_a_metric_the_adapter_serves(renders, overlay):
    docs = objects(renders, overlay)
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "torchserve"}
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 120
    served = {rule["name"]["as"] for rule in adapter_rules()}
    metrics = hpa["spec"]["metrics"]
    assert metrics and all(m["type"] == "Pods" for m in metrics), "per-pod custom metrics, not CPU"
    for m in metrics:
        assert m["pods"]["metric"]["name"] in served


def test_adapter_rule_is_rate_based_and_valid_promql(tmp_path):
    promtool = _require_tool("promtool")
    rules = []
    for i, rule in enumerate(adapter_rules()):
        query = rule["metricsQuery"]
        assert "rate(" in query, "a raw counter only grows: the HPA would never scale down"
        assert "pod" in rule["resources"]["overrides"] and "namespace" in rule["resources"]["overrides"]
        # What prometheus-adapter substitutes for one pod's request.
        concrete = (query.replace("<<.LabelMatchers>>", 'namespace="torchserve",pod="torchserve-0"')
                    .replace("<<.GroupBy>>", "pod"))
        assert "<<" not in concrete, f"unknown template in {query}"
        rules.append({"record": f"adapter:rule{i}", "expr": concrete})
    rule_file = tmp_path / "adapter.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "adapter", "rules": rules}]}))
    proc = subprocess.run([promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------------
# Config from the real files, monitoring generated from the real rules

def configmap_data(docs, prefix: str) -> dict[str, str]:
    found = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith(prefix)]
    assert len(found) == 1, f"expected one ConfigMap {prefix}*"
    assert not found[0].get("binaryData"), "text files must land in data, unchanged"
    return found[0]["data"]


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_configmaps_hold_the_config_files_byte_for_byte(renders, overlay):
    docs = objects(renders, overlay)
    expected = {
        "torchserve-config": {"config.properties": ROOT / "config" / "config.properties",
                              "metrics.yaml": ROOT / "config" / "metrics.yaml"},
        "torchserve-dashboard": {"torchserve.json": ROOT / "config" / "grafana" / "dashboards" / "torchserve.json"},
        "locust-files": {p.name: p for p in sorted((ROOT / "loadtest").iterdir())
                         if p.suffix == ".py" or p.name == "locust.conf"},
    }
    for prefix, files in expected.items():
        data = configmap_data(docs, prefix)
        assert sorted(data) == sorted(files), f"{prefix}: keys differ from the files"
        for key, path in files.items():
            assert data[key].encode() == path.read_bytes(), f"{prefix}/{key} differs from {path}"


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_server_mounts_the_configmap_over_the_image_config(renders, overlay):
    docs = objects(renders, overlay)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    cm_volume = next(v["name"] for v in pod["volumes"] if v.get("configMap", {}).get("name", "").startswith("torchserve-config"))
    mounts = {m["mountPath"]: m.get("subPath") for m in server_container(docs)["volumeMounts"] if m["name"] == cm_volume}
    assert mounts == {"/app/config/config.properties": "config.properties", "/app/config/metrics.yaml": "metrics.yaml"}


def test_prometheus_rule_is_up_to_date_with_the_rule_files():
    assert k8s_monitoring.PROMETHEUS_RULE_FILE.read_text() == k8s_monitoring.render(), (
        "k8s/components/monitoring/torchserve-prometheusRule.yaml is stale: run `make k8s-generate`")


def test_prometheus_rule_carries_every_rule_group_unchanged(renders):
    rule = one(objects(renders, "gpu"), "PrometheusRule")
    expected = []
    for path in k8s_monitoring.rule_files():
        expected += yaml.safe_load(path.read_text())["groups"]
    assert rule["spec"]["groups"] == expected


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_monitoring_is_picked_up_by_kube_prometheus_stack(renders, overlay):
    docs = objects(renders, overlay)
    monitoring = [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {d["metadata"]["name"] for d in monitoring if d["kind"] == "ServiceMonitor"} == {"torchserve", "dcgm-exporter"}
    release = {d["metadata"]["labels"].get("release") for d in monitoring}
    assert len(release) == 1 and None not in release, "every monitoring object carries the one release label"
    assert one(docs, "ConfigMap", "torchserve-dashboard")["metadata"]["labels"]["grafana_dashboard"] == "1"
    monitor = one(docs, "ServiceMonitor", "torchserve")
    services = [s for s in docs if s["kind"] == "Service"
                and monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in services] == ["torchserve-metrics"]
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in services[0]["spec"]["ports"]}
    # job="torchserve", as in config/prometheus/prometheus.yml, so the shared rules match.
    job = services[0]["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    scrape_jobs = [j["job_name"] for j in yaml.safe_load((ROOT / "config/prometheus/prometheus.yml").read_text())["scrape_configs"]]
    assert job == "torchserve" and job in scrape_jobs


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_dcgm_exporter_is_scraped_as_the_compose_job(renders, overlay):
    monitor = one(objects(renders, overlay), "ServiceMonitor", "dcgm-exporter")
    endpoint = monitor["spec"]["endpoints"][0]
    scrape_jobs = [j["job_name"] for j in yaml.safe_load((ROOT / "config/prometheus/prometheus.yml").read_text())["scrape_configs"]]
    job = [r["replacement"] for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
    assert job == ["dcgm"] and "dcgm" in scrape_jobs
    assert endpoint["honorLabels"] is True, "keep the pod/namespace of the GPU's user"
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["gpu-operator"]


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_model_oci_pulls_pinned_archives_into_a_store_the_server_only_reads(renders, overlay):
    """Models apart from the image (issue 29): the init container runs the serving image, pulls
    the recorded digests into an emptyDir, and the server mounts it read-only; no claim to attach."""
    docs = objects(renders, overlay, ("model-oci",))
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["image"] == server_container(docs)["image"], "the same image: no third-party puller"
    assert init["command"][:3] == ["python", "-m", "stackctl.deploy.model_oci"] and "pull" in init["command"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    dest = init["command"][init["command"].index("--dest") + 1]
    store = next(m for m in init["volumeMounts"] if m["mountPath"] == dest)
    assert "emptyDir" in volumes[store["name"]] and not store.get("readOnly")
    served = next(m for m in server_container(docs)["volumeMounts"] if m["mountPath"] == "/app/model_store")
    assert served["name"] == store["name"] and served["readOnly"] is True
    refs = init["command"][init["command"].index("--refs") + 1]
    listed = next(m for m in init["volumeMounts"] if refs.startswith(m["mountPath"] + "/"))
    config_map = volumes[listed["name"]]["configMap"]["name"]
    assert config_map in {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    # Egress for the pull only: HTTPS and DNS, nothing else.
    policy = one(docs, "NetworkPolicy", "torchserve-model-pull")
    assert policy["spec"]["policyTypes"] == ["Egress"]
    assert {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]} == {443, 53}


@pytest.mark.parametrize(("overlay", "combo"), COMBINATIONS, ids=lambda v: v if isinstance(v, str) else "+".join(v) or "-")
def test_the_pod_serves_every_archive_of_its_model_store(renders, overlay, combo):
    """No command or args: the image's CMD (`--model-store /app/model_store --models all`) loads
    every archive there, baked in or pulled by components/model-oci, brought models and versions alike."""
    deployment = one(objects(renders, overlay, combo), "Deployment", "torchserve")
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "torchserve")
    assert "command" not in container and "args" not in container
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    if "model-oci" in combo:
        assert mounts["/app/model_store"]["readOnly"] is True
    else:
        assert "/app/model_store" not in mounts


def test_release_label_is_set_in_one_place():
    hits = [p for p in (ROOT / "k8s").rglob("*.yaml") if "kube-prometheus-stack" in p.read_text()
            and re.search(r"^\s*(value|release):\s*kube-prometheus-stack\s*$", p.read_text(), re.M)]
    assert [p.relative_to(ROOT).as_posix() for p in hits] == ["k8s/components/monitoring/kustomization.yaml"]


def test_every_folder_has_a_readme():
    folders = [ROOT / "k8s", ROOT / "k8s" / "base", ROOT / "k8s" / "prometheus-adapter", ROOT / "k8s" / "kserve",
               *(ROOT / "k8s" / "overlays").iterdir(), *(ROOT / "k8s" / "components").iterdir()]
    missing = [f.relative_to(ROOT).as_posix() for f in folders if f.is_dir() and not (f / "README.md").is_file()]
    assert not missing, f"folders without README.md: {missing}"


def make_render_line(*assignments: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["make", "-n", "k8s-render", "OVERLAY=cpu", *assignments], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False,
                          env={**{k: v for k, v in os.environ.items() if k not in ("REGISTRY", "VERSION")}, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return next(line for line in proc.stdout.splitlines() if "stackctl.deploy.k8s render" in line)


def test_make_passes_registry_and_version_only_when_given():
    """`make k8s-apply REGISTRY= VERSION=` deploys what `make push` pushed; a VERSION that some
    makefile defines for itself, or an empty one, leaves the overlays' local tags alone."""
    assert make_render_line("REGISTRY=r.example/team", "VERSION=1.2.3").endswith("--registry r.example/team --version 1.2.3")
    assert "--version 4.5" in make_render_line(env={"VERSION": "4.5"})
    plain = make_render_line("VERSION=", "REGISTRY=")
    assert "--registry" not in plain and "--version" not in plain
    # As if mk/docker.mk said `VERSION ?= 0.1.0` for its own use.
    defined = make_render_line("--eval=VERSION ?= 0.1.0")
    assert "--version" not in defined


@pytest.mark.parametrize("overlay", k8s.overlays())
def test_stream_affinity_keeps_a_client_on_one_pod_only_when_enabled(renders, overlay):
    """A streaming model's state lives in one pod (docs/streaming.md): components/stream-affinity
    pins each in-cluster client to a pod for longer than any spec's idle time; off by default."""
    idle_s = max((s.sequence.idle_ms for s in load_specs() if s.sequence is not None), default=0) / 1000
    service = one(objects(renders, overlay, ("stream-affinity",)), "Service", "torchserve")
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    assert service["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] > idle_s
    assert "sessionAffinity" not in one(objects(renders, overlay, ()), "Service", "torchserve")["spec"]
