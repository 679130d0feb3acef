# Triton Inference Server, the second runtime for the same specs and handlers (issue #26, docs/triton.md).
# .venv-triton holds only the nvidia-pytriton wheel: its tritonserver binary (2.51), libraries and
# Python backend. The models' own code runs on .venv's torch (stackctl/serve/triton.py).
TRITON_VENV ?= .venv-triton
STAMP_TRITON := $(TRITON_VENV)/.installed
export TRITON_VENV

# config/triton/requirements.lock: the one wheel with its hashes (make lock). --no-deps and no pip
# check: pytriton's Python dependencies (numpy<2, ...) are never imported, only its binaries run.
$(STAMP_TRITON): config/triton/requirements.lock config/triton/requirements.txt
	@test -x $(TRITON_VENV)/bin/python || python3 -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r config/triton/requirements.lock
	@touch $@

.PHONY: triton-venv
triton-venv: $(STAMP_TRITON) ## Install Triton Inference Server (tritonserver 2.51, Python backend) into .venv-triton (~1 min)

# `make serve RUNTIME=triton` needs the server; `make test` installs it so the Triton tests never skip in CI.
serve: $(if $(filter triton,$(RUNTIME)),$(STAMP_TRITON))
test: $(STAMP_TRITON)

.PHONY: triton-repo
triton-repo: $(STAMP_VENV) ## Generate the Triton model repository (build/triton/repo) from model_store/ and print the version mapping
	$(PY) -m stackctl run triton-repo
