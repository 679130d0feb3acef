# Security and dependency audit (see audit/README.md). checkov lives in its own venv because it pins
# many packages at versions that clash with .venv.
AUDIT_VENV ?= .venv-audit
STAMP_AUDIT := $(AUDIT_VENV)/.installed
export AUDIT_VENV

# audit/requirements.lock: audit/requirements.txt with hashes (make lock); --no-deps and pip check as in make venv (Makefile).
$(STAMP_AUDIT): audit/requirements.lock audit/requirements.txt
	@test -x $(AUDIT_VENV)/bin/python || python3 -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/python -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r audit/requirements.lock
	$(AUDIT_VENV)/bin/python -m pip check -q
	@touch $@

.PHONY: audit-tools audit audit-offline audit-deps
audit-tools: $(STAMP_AUDIT) ## Install checkov (pinned in audit/requirements.txt) into .venv-audit (~1 min)
audit: $(STAMP_VENV) $(STAMP_AUDIT) ## checkov (Dockerfiles, compose, k8s) + pip-audit (needs its online vulnerability DB; says so when unreachable)
	$(PY) -m stackctl.deploy.audit all
audit-offline: $(STAMP_VENV) $(STAMP_AUDIT) ## The offline part of `make audit` (checkov only), as CI runs it
	$(PY) -m stackctl.deploy.audit checkov
audit-deps: $(STAMP_VENV) ## pip-audit on requirements.txt; exit 3 = vulnerability DB unreachable, NOT a pass
	$(PY) -m stackctl.deploy.audit deps
