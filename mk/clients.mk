# Real Open Inference Protocol clients the tests drive the stack with. tritonclient is in .venv
# (requirements.txt); the KServe SDK pins psutil<6 and protobuf<7, so it has its own venv, used
# through tests/clients/kserve_call.py (see tests/clients/README.md).
KSERVE_VENV ?= .venv-kserve
STAMP_KSERVE := $(KSERVE_VENV)/.installed
export KSERVE_VENV

# tests/clients/kserve-requirements.lock: the SDK with hashes (make lock); --no-deps and pip check as in make venv (Makefile).
$(STAMP_KSERVE): tests/clients/kserve-requirements.lock tests/clients/kserve-requirements.txt
	@test -x $(KSERVE_VENV)/bin/python || python3 -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/python -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r tests/clients/kserve-requirements.lock
	$(KSERVE_VENV)/bin/python -m pip check -q
	@touch $@

.PHONY: kserve-client
kserve-client: $(STAMP_KSERVE) ## Install the KServe SDK (a test client) into .venv-kserve (~1 min)
