# Containers: the images of docker/Dockerfile and the compose stack of docker-compose.yml (see
# docker/README.md). docker/compose.sh picks the GPU or CPU compose files for this host;
# STACK_VARIANT=gpu|cpu overrides it.

# The root Makefile exports default ports for the native stack. Compose gives the shell
# environment precedence over .env, so pass on only the ports a user set (environment or command
# line) and let .env and the compose file's defaults decide the rest.
COMPOSE_PORT_VARS := INFERENCE_PORT GRPC_PORT MANAGEMENT_PORT METRICS_PORT PROMETHEUS_PORT
STACK := env $(foreach v,$(COMPOSE_PORT_VARS),$(if $(filter file,$(origin $(v))),-u $(v))) docker/compose.sh
# `make up SERVICES="torchserve prometheus"` starts a subset; empty = the whole stack.
SERVICES ?=

.PHONY: engine base-images build up down logs ps push
engine: $(STAMP_VENV) ## Install and start a Docker engine + Compose plugin on Debian/Ubuntu (no-op where one answers)
	@bash scripts/install-engine.sh
base-images: engine ## Build the local bookworm and Prometheus base images from Debian packages (offline path; no-op if present)
	@bash scripts/build-base-images.sh
build: models ## Build the TorchServe image (GPU variant where Docker has the NVIDIA runtime, else CPU) and the Locust image
	@$(STACK) build
# The engine check comes first, so a host without one hears so at once (not after a build).
up: ## Build if needed, start the compose stack (or SERVICES="torchserve prometheus"), wait until healthy, print the URLs
	@$(STACK) check
	@$(MAKE) --no-print-directory build
	@$(STACK) up $(SERVICES)
down: ## Stop and remove the compose stack's containers and networks (named volumes with data are kept)
	@$(STACK) down
logs: ## Follow the compose stack's logs
	@$(STACK) logs
ps: ## Show the compose stack's containers and their health
	@$(STACK) ps

# Builds every variant (gpu too, on any host: building needs no GPU) and pushes
# torchserve-stack/torchserve:{gpu,cpu} and torchserve-stack/locust:latest as
# $(REGISTRY)/torchserve-stack/torchserve:$(VERSION)-{gpu,cpu} and $(REGISTRY)/torchserve-stack/locust:$(VERSION);
# fails if any one cannot be built or pushed. Then records the pushed digests in
# k8s/overlays/{gpu,cpu}/release/, which `kubectl apply -k k8s/overlays/<v>` deploys as is.
# DRY_RUN=1 builds, tags and prints the pushes without running them (records nothing).
REGISTRY ?=
VERSION ?=
DRY_RUN ?=
# Every archive of model_store/ (every version) as an OCI artifact,
# $(REGISTRY)/torchserve-stack/models/<name>:<version>; the digests go to
# k8s/components/model-oci/models.txt (MODEL_REFS overrides), which that component's init
# container pulls. PLAIN_HTTP=1 for a registry without TLS (a loopback test registry).
MODEL_REFS ?= k8s/components/model-oci/models.txt
PLAIN_HTTP ?=
.PHONY: push-models
push-models: models ## Push every model archive as an OCI artifact and record the digests for k8s/components/model-oci: make push-models REGISTRY=r
	@test -n "$(REGISTRY)" || { echo "usage: make push-models REGISTRY=registry.example.com[/path]" >&2; exit 2; }
	$(PY) -m stackctl.deploy.model_oci push --registry "$(REGISTRY)" --record "$(MODEL_REFS)" $(if $(PLAIN_HTTP),--plain-http)
push: models ## Build and push every image (gpu, cpu, locust) and record their digests in k8s/overlays/*/release: make push REGISTRY=r VERSION=v [DRY_RUN=1]
	@PYTHON=$(PY) bash docker/push.sh "$(REGISTRY)" "$(VERSION)" $(if $(DRY_RUN),--dry-run)

# SBOMs: CycloneDX JSON per image in build/sbom/ (stackctl/deploy/sbom.py): the Python packages of the
# image's /opt/venv and its Debian packages, read from the image itself. cyclonedx-bom lives in
# its own venv (pinned in audit/sbom-requirements.txt), like checkov. SBOM_IMAGES= a subset.
SBOM_VENV ?= .venv-sbom
STAMP_SBOM := $(SBOM_VENV)/.installed
SBOM_IMAGES ?=
# audit/sbom-requirements.lock: audit/sbom-requirements.txt with hashes (make lock); --no-deps and pip check as in make venv (Makefile).
$(STAMP_SBOM): audit/sbom-requirements.lock audit/sbom-requirements.txt
	@test -x $(SBOM_VENV)/bin/python || python3 -m venv $(SBOM_VENV)
	$(SBOM_VENV)/bin/python -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r audit/sbom-requirements.lock
	$(SBOM_VENV)/bin/python -m pip check -q
	@touch $@
.PHONY: sbom
sbom: $(STAMP_VENV) $(STAMP_SBOM) ## An SBOM per built image (CycloneDX JSON in build/sbom/): Python and Debian packages, read from the image
	@CYCLONEDX_PY=$(SBOM_VENV)/bin/cyclonedx-py $(PY) -m stackctl.deploy.sbom $(foreach i,$(SBOM_IMAGES),--image $(i))
