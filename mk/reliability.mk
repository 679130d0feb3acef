# Reliability (see docs/security.md and docs/hostile-inputs.md): a long constant-load soak against
# the `make serve` stack. The 1-minute version runs in the test suite (tests/integration/test_soak.py).
# `make soak DURATION=2h` overrides the length (DURATION set for `make loadtest` elsewhere does not
# leak in: only a command-line or environment DURATION counts here).
SOAK_DURATION ?= 30m
SOAK_ARGS     ?=

.PHONY: soak
soak: $(STAMP_VENV) ## Constant load at half the measured capacity (measured first if no report) for DURATION (default 30m); fails on any error or worker RSS growth >= 10%; report in reports/soak/<timestamp>/
	$(PY) -m loadtest.soak --duration $(if $(filter command line environment,$(origin DURATION)),$(DURATION),$(SOAK_DURATION)) $(SOAK_ARGS)
