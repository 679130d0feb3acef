# Entry points. Each target is one line that calls a tool; the logic lives in stackctl/ (Python).
# `make help` lists every target from its `## ` comment, including those in mk/*.mk.
SHELL := /bin/bash -o pipefail
.DEFAULT_GOAL := help

VENV            ?= .venv
PY              := $(VENV)/bin/python
INFERENCE_PORT  ?= 8080
GRPC_PORT       ?= 7070
MANAGEMENT_PORT ?= 8081
METRICS_PORT    ?= 8082
PROMETHEUS_PORT ?= 9090
export INFERENCE_PORT GRPC_PORT MANAGEMENT_PORT METRICS_PORT PROMETHEUS_PORT
# Which server `make serve` starts: torchserve, or triton (mk/triton.mk, docs/triton.md).
RUNTIME         ?= torchserve

STAMP_VENV := $(VENV)/.installed

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# requirements.lock pins every package requirements.txt pulls in, each with its sha256 hashes
# (scripts/lock.sh): pip installs only files with those hashes. --no-deps: the lock is complete
# (tests/unit/test_lockfile.py), and pip's resolver rejects a hashed pin that a dependency asks
# for with an extra (uvicorn[standard], cuda-toolkit[...]: pypa/pip#9644); pip check then proves
# every requirement is met.
$(STAMP_VENV): requirements.lock requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip check -q
	@touch $@

.PHONY: setup
setup: system-deps venv ## Install system packages (Prometheus, nginx, word lists) and the virtualenv
.PHONY: system-deps
system-deps: ## Install the Debian packages the stack needs (prometheus, nginx, word lists, Java check)
	@bash scripts/install-system-deps.sh
.PHONY: venv lock
venv: $(STAMP_VENV) ## Create .venv with the pinned Python dependencies (requirements.lock, hash-checked)
lock: ## Regenerate requirements.lock (hashes) from requirements.txt after changing a pin (needs PyPI)
	bash scripts/lock.sh

.PHONY: models
models: system-deps $(STAMP_VENV) ## Train (if needed) and archive every model into model_store/
	$(PY) -m stackctl models

.PHONY: serve
serve: system-deps $(STAMP_VENV) ## Start TorchServe + Prometheus natively on loopback and wait until every model is ready (RUNTIME=triton: Triton, docs/triton.md)
	$(PY) -m stackctl models
	$(PY) -m stackctl serve$(if $(filter triton,$(RUNTIME)), --runtime triton)

.PHONY: stop
stop: ## Stop what `make serve` started
	@test -x $(PY) && $(PY) -m stackctl stop || true

.PHONY: status
status: $(STAMP_VENV) ## Show the native stack's processes and each model's worker status
	$(PY) -m stackctl status

# Everything `make test` needs is installed by its prerequisites; preflight then stops the run
# with one line per tool that is still missing, instead of dozens of failing tests. engine and
# base-images (mk/docker.mk) are no-ops where a Docker engine answers and the bases exist.
.PHONY: test
test: system-deps $(STAMP_VENV) audit-tools kserve-client engine base-images ## Run the whole test suite (installs what it needs, builds archives and images if needed; unit, deploy, integration, live containers)
	$(PY) -m stackctl.preflight
	@$(MAKE) --no-print-directory lint
	$(PY) -m stackctl models
	$(PY) -m pytest

.PHONY: test-unit
test-unit: system-deps $(STAMP_VENV) ## Fast tests only: no server (builds the archives the in-process handler tests load)
	$(PY) -m stackctl models
	$(PY) -m pytest tests/unit

.PHONY: clean
clean: stop ## Remove built models, archives and run state
	rm -rf build run model_store/*.mar

-include mk/*.mk
