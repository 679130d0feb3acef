"""k8s/kserve/, proven without a cluster: the generated files are what the specs generate, every
KServe object passes the CRD schemas of the KServe release it targets (pinned in
tests/deploy/data/kserve/, checked to be that release's files unchanged), the built-in objects
pass `kubernetes-validate --strict`, and the promises of k8s/kserve/README.md hold: the runtime
runs the image as k8s/base does, one port per runtime container (gRPC named h2c), one
InferenceService per model answering REST and gRPC, archives pulled by digest."""
from __future__ import annotations

import copy
import gzip
import hashlib
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from stackctl import paths, tools
from stackctl.catalog.specs import load_specs
from stackctl.deploy import dockerfile, k8s_kserve, model_oci
from tests.crd_schema import crd_schema, undeclared_fields

ROOT = paths.ROOT
CRDS = Path(__file__).parent / "data" / "kserve"
# The Git blob ids of the CRDs at kserve/kserve tag v0.20.0 (commit 1fb781055dd1567164358233e1125142ca6ef1fe),
# config/crd/full/: `git ls-tree v0.20.0 <path>` prints them. README.md in CRDS says how to update.
KSERVE_BLOBS = {
    "serving.kserve.io_servingruntimes.yaml.gz": "59deb0d14aed7be7edfd32ca0577f9ba789fa747",
    "serving.kserve.io_inferenceservices.yaml.gz": "1e37d05b7a741eb40b9eb01c378dc9dc80eab3d9",
    "serving.kserve.io_clusterstoragecontainers.yaml.gz": "265b4ebd6442da87cd2e81ca3a660a347857d800",
}
KSERVE_KINDS = ("ServingRuntime", "InferenceService", "ClusterStorageContainer")
KUBERNETES_VERSIONS = ["1.37.0", "1.33.0"]


def pinned(model: str, hex_digit: str) -> str:
    return f"r.example/team/torchserve-stack/models/{model}@sha256:{hex_digit * 64}"


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    """Every object of the checked-in k8s/kserve/ files."""
    return [d for path in sorted(k8s_kserve.KSERVE_DIR.glob("*.yaml")) if path.name != "kustomization.yaml"
            for d in yaml.safe_load_all(path.read_text()) if d]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def runtime(docs, name: str) -> dict[str, Any]:
    (found,) = [d for d in of_kind(docs, "ServingRuntime") if d["metadata"]["name"] == name]
    return found


def base_container() -> dict[str, Any]:
    pod = yaml.safe_load(k8s_kserve.BASE_DEPLOYMENT.read_text())["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "torchserve")


# ------------------------------------------------------------------------------------------------
# Generated, pinned, schema-valid

def test_generated_files_are_up_to_date():
    assert k8s_kserve.stale(k8s_kserve.render()) == [], "k8s/kserve/ is stale: run `make kserve-generate`"
    assert k8s_kserve.main(["--check"]) == 0


def test_check_reports_a_stale_file(tmp_path):
    wanted = k8s_kserve.render()
    for name, text in wanted.items():
        (tmp_path / name).write_text(text)
    assert k8s_kserve.stale(wanted, tmp_path) == []
    (tmp_path / "inferenceService-digits.yaml").write_text(wanted["inferenceService-digits.yaml"].replace("v2", "v1"))
    (tmp_path / "inferenceService-gone.yaml").write_text("")
    diffs = k8s_kserve.stale(wanted, tmp_path)
    assert len(diffs) == 2 and "inferenceService-gone.yaml: no spec generates it" in diffs[1]


@pytest.mark.parametrize("name", sorted(KSERVE_BLOBS))
def test_pinned_crds_are_the_kserve_release_files_unchanged(name):
    raw = gzip.decompress((CRDS / name).read_bytes())
    assert hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest() == KSERVE_BLOBS[name]
    assert sorted(p.name for p in CRDS.glob("*.gz")) == sorted(KSERVE_BLOBS)


@pytest.mark.parametrize("kind", KSERVE_KINDS)
def test_objects_match_their_kserve_crd_schema(docs, kind):
    schema = crd_schema(CRDS, kind)
    found = of_kind(docs, kind)
    assert found
    for obj in found:
        # No meta-schema check: the CRDs carry Go regexes; a pattern is compiled only when used.
        jsonschema.Draft7Validator(schema).validate(obj)
        assert not undeclared_fields(obj, schema), f"{kind}/{obj['metadata']['name']}: fields unknown to the CRD"


def test_crd_check_rejects_an_unknown_field_and_a_wrong_type(docs):
    schema = crd_schema(CRDS, "InferenceService")
    isvc = copy.deepcopy(of_kind(docs, "InferenceService")[0])
    isvc["spec"]["predictor"]["storageURIs"] = isvc["spec"]["predictor"].pop("storageUris")
    assert undeclared_fields(isvc, schema) == [".spec.predictor.storageURIs"]
    isvc = copy.deepcopy(of_kind(docs, "InferenceService")[0])
    isvc["spec"]["predictor"]["minReplicas"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(isvc)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_objects_pass_kubernetes_validate_strict(docs, tmp_path, version):
    validate = tools.find("kubernetes-validate", "`make venv` installs it")
    builtin = [d for d in docs if not d["apiVersion"].startswith("serving.kserve.io/")]
    assert {d["kind"] for d in builtin} == {"Namespace", "ServiceAccount", "NetworkPolicy"}
    manifest = tmp_path / "builtin.yaml"
    manifest.write_text(yaml.safe_dump_all(builtin))
    proc = subprocess.run([validate, "--strict", "--kubernetes-version", version, str(manifest)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("passed for resource") == len(builtin), proc.stdout + proc.stderr


def test_kustomization_renders_every_object(docs):
    kubectl = tools.find("kubectl", "`make venv` installs it")
    proc = subprocess.run([kubectl, "kustomize", str(k8s_kserve.KSERVE_DIR)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    rendered = [d for d in yaml.safe_load_all(proc.stdout) if d]
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, rendered)) == sorted(map(key, docs))
    # kustomize left the cluster-scoped storage container without a namespace.
    assert all("namespace" not in d["metadata"] for d in of_kind(rendered, "ClusterStorageContainer"))
    assert {d["metadata"].get("namespace") for d in rendered if d["kind"] not in ("Namespace", "ClusterStorageContainer")} \
        == {k8s_kserve.NAMESPACE}


# ------------------------------------------------------------------------------------------------
# The runtime: the image as k8s/base runs it

@pytest.mark.parametrize("name", [k8s_kserve.RUNTIME, k8s_kserve.GRPC_RUNTIME])
def test_runtime_runs_the_image_as_k8s_base_does(docs, name):
    (container,) = runtime(docs, name)["spec"]["containers"]
    base = base_container()
    assert container["name"] == "kserve-container", "KServe merges the InferenceService into this name"
    assert "command" not in container and "args" not in container, "the image's own ENTRYPOINT and CMD"
    for key in ("env", "resources", "startupProbe", "readinessProbe", "livenessProbe", "lifecycle",
                "securityContext", "workingDir"):
        assert container[key] == base[key], key
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["OIP_GRPC_ADDRESS"] == f"0.0.0.0:{k8s_kserve.GRPC_PORT}"
    # Read-only root: every path the base makes writable is an emptyDir here too.
    volumes = {v["name"]: v for v in runtime(docs, name)["spec"]["volumes"]}
    for mount in container["volumeMounts"]:
        assert "emptyDir" in volumes[mount["name"]], mount
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/app/logs"}


def test_each_runtime_container_declares_one_port_and_grpc_is_named_h2c(docs):
    """Knative allows one port per serving container, and routes gRPC only to a port named h2c."""
    rest, grpc = runtime(docs, k8s_kserve.RUNTIME), runtime(docs, k8s_kserve.GRPC_RUNTIME)
    assert [c["ports"] for c in rest["spec"]["containers"]] == [[{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]]
    assert [c["ports"] for c in grpc["spec"]["containers"]] == [[{"name": "h2c", "containerPort": 7070, "protocol": "TCP"}]]
    assert rest["spec"]["protocolVersions"] == ["v2", "grpc-v2"] and grpc["spec"]["protocolVersions"] == ["grpc-v2"]
    for rt in (rest, grpc):
        assert rt["spec"]["annotations"]["prometheus.kserve.io/port"] == "8082"
        assert [f["autoSelect"] for f in rt["spec"]["supportedModelFormats"]] == [False]


def merged_ports(runtime_ports: list[dict], isvc_ports: list[dict]) -> list[dict]:
    """The container ports KServe ends with: it merges the InferenceService's container into the
    runtime's with a strategic merge patch (pkg/utils/container_merge.go), and corev1's ports merge
    on containerPort. As apimachinery's mergeSortedSlice orders the result: the patch's items in
    the patch's order, each runtime-only item placed before a patch item only where both appear
    in the runtime's list and it came first there."""
    server_order = [p["containerPort"] for p in runtime_ports]
    patched = [{**next((r for r in runtime_ports if r["containerPort"] == p["containerPort"]), {}), **p}
               for p in isvc_ports]
    server_only = [r for r in runtime_ports if r["containerPort"] not in {p["containerPort"] for p in isvc_ports}]
    merged: list[dict] = []
    while server_only or patched:
        if server_only and patched:
            left, right = server_only[0]["containerPort"], patched[0]["containerPort"]
            take_left = left in server_order and right in server_order and \
                server_order.index(left) < server_order.index(right)
        else:
            take_left = bool(server_only)
        merged.append((server_only if take_left else patched).pop(0))
    return merged


def test_port_merge_model_matches_apimachinery():
    """The trap the generated order avoids: a runtime-only port goes after the patch's ports."""
    http, grpc = {"name": "http1", "containerPort": 8080}, {"name": "h2c", "containerPort": 7070}
    assert merged_ports([http], [grpc]) == [grpc, http]
    assert merged_ports([http], [http, grpc]) == [http, grpc]


def test_one_inference_service_per_model_answering_rest_and_grpc(docs):
    services = {d["metadata"]["name"]: d for d in of_kind(docs, "InferenceService")}
    assert sorted(services) == sorted(s.name for s in load_specs())
    rest = runtime(docs, k8s_kserve.RUNTIME)
    for name, isvc in services.items():
        predictor = isvc["spec"]["predictor"]
        model = predictor["model"]
        assert model["runtime"] == k8s_kserve.RUNTIME and model["protocolVersion"] == "v2"
        assert {k: model["modelFormat"][k] for k in ("name", "version")} in [
            {k: f[k] for k in ("name", "version")} for f in rest["spec"]["supportedModelFormats"]]
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
        ports = merged_ports(rest["spec"]["containers"][0]["ports"], model["ports"])
        # Standard mode: the first port is the Service's REST port (80); a port whose name holds
        # "grpc" or "h2c" gets appProtocol kubernetes.io/h2c and the gRPC route.
        assert [(p["name"], p["containerPort"]) for p in ports] == [("http1", 8080), ("h2c", 7070)], name


def test_inference_service_pod_is_locked_down_like_the_base(docs):
    base_pod = yaml.safe_load(k8s_kserve.BASE_DEPLOYMENT.read_text())["spec"]["template"]["spec"]
    namespace = of_kind(docs, "Namespace")[0]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    accounts = {d["metadata"]["name"] for d in of_kind(docs, "ServiceAccount")}
    for isvc in of_kind(docs, "InferenceService"):
        predictor = isvc["spec"]["predictor"]
        for key in ("securityContext", "terminationGracePeriodSeconds", "automountServiceAccountToken",
                    "enableServiceLinks"):
            assert predictor[key] == base_pod[key], key
        assert predictor["serviceAccountName"] in accounts
    for container in [c for rt in of_kind(docs, "ServingRuntime") for c in rt["spec"]["containers"]] + [
            of_kind(docs, "ClusterStorageContainer")[0]["spec"]["container"]]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["runAsNonRoot"] is True
        assert sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert sc["readOnlyRootFilesystem"] is True


def test_network_policy_admits_inference_from_the_cluster_and_metrics_from_monitoring(docs):
    (policy,) = of_kind(docs, "NetworkPolicy")
    selector = policy["spec"]["podSelector"]
    for isvc in of_kind(docs, "InferenceService"):
        # KServe puts the InferenceService's labels and its name label on the predictor pods.
        pod_labels = {**isvc["metadata"]["labels"], "serving.kserve.io/inferenceservice": isvc["metadata"]["name"]}
        assert selector["matchLabels"].items() <= pod_labels.items()
        assert all(e["key"] in pod_labels and e["operator"] == "Exists" for e in selector["matchExpressions"])
    peers: dict[int, list[dict]] = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            peers.setdefault(port["port"], []).extend(rule["from"])
    assert set(peers) == {8080, 7070, 8082}, "management listens on loopback: no rule admits it"
    assert peers[8080] == peers[7070] == [{"namespaceSelector": {}}]
    assert all("namespaceSelector" not in p or p["namespaceSelector"].get("matchLabels") for p in peers[8082])
    assert {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]} == {443, 53}, "the pull only"


# ------------------------------------------------------------------------------------------------
# Models: pulled by digest into the store the image's CMD serves

def image_model_store() -> str:
    cmd = dockerfile.stage("runtime").exec_form("CMD")
    assert cmd is not None
    return cmd[cmd.index("--model-store") + 1]


def test_archives_are_pulled_by_the_storage_container_into_the_served_store(docs):
    (storage,) = of_kind(docs, "ClusterStorageContainer")
    container = storage["spec"]["container"]
    assert container["command"] == ["python", "-m", "stackctl.deploy.model_oci", "fetch"]
    assert container["image"] == runtime(docs, k8s_kserve.RUNTIME)["spec"]["containers"][0]["image"]
    assert storage["spec"]["supportedUriFormats"] == [{"prefix": model_oci.URI_SCHEME}]
    env = {e["name"]: e["value"] for e in container["env"]}
    for isvc in of_kind(docs, "InferenceService"):
        predictor = isvc["spec"]["predictor"]
        assert predictor["storageContainerName"] == storage["metadata"]["name"]
        assert {u["mountPath"] for u in predictor["storageUris"]} == {image_model_store()} == {env["TMPDIR"]}
        assert all(u["uri"].startswith(model_oci.URI_SCHEME) for u in predictor["storageUris"])
        # Not oci://: KServe would take it for a modelcar image (k8s/kserve/README.md).
        assert not any(u["uri"].startswith("oci") for u in predictor["storageUris"])


def test_storage_uris_are_every_recorded_version_of_the_model():
    refs = [pinned("digits", "a"), pinned("digits", "b"), pinned("langid", "c"),
            pinned("digits-large", "d")]
    files = k8s_kserve.render(refs=refs)
    uris = {name: [u["uri"] for u in yaml.safe_load(text.split("\n", 4)[4])["spec"]["predictor"]["storageUris"]]
            for name, text in files.items() if name.startswith("inferenceService-")}
    assert uris["inferenceService-digits.yaml"] == [model_oci.URI_SCHEME + r for r in refs[:2]]
    assert uris["inferenceService-langid.yaml"] == [model_oci.URI_SCHEME + refs[2]]
    for uri in uris["inferenceService-digits.yaml"]:
        assert model_oci.ref_of_uri(uri) in refs


def test_unpushed_models_get_a_uri_the_storage_container_refuses_with_the_fix(docs, tmp_path):
    for isvc in of_kind(docs, "InferenceService"):
        for entry in isvc["spec"]["predictor"]["storageUris"]:
            if "@sha256:" in entry["uri"]:
                continue  # models.txt records pushed archives
            with pytest.raises(model_oci.ModelOciError, match="make push-models"):
                model_oci.ref_of_uri(entry["uri"])
    assert model_oci.main(["fetch", f"{model_oci.URI_SCHEME}REGISTRY/x", str(tmp_path)]) == 2
    assert model_oci.main(["fetch", f"{model_oci.URI_SCHEME}REGISTRY/x"]) == 2, "URI DEST pairs"
    with pytest.raises(model_oci.ModelOciError, match="is not a torchserve-oci:// URI"):
        model_oci.ref_of_uri("oci://" + pinned("digits", "a"))


def test_a_spec_name_that_cannot_name_an_inference_service_is_refused():
    spec = load_specs()[0]
    bad = copy.copy(spec)
    object.__setattr__(bad, "name", "Digits_v2")
    with pytest.raises(k8s_kserve.KServeRenderError, match="not a valid InferenceService name"):
        k8s_kserve.inference_service(bad, [])


def test_make_target_regenerates_with_the_module():
    proc = subprocess.run(["make", "-n", "kserve-generate"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "-m stackctl.deploy.k8s_kserve" in proc.stdout, proc.stderr
