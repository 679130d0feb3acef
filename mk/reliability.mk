# Reliability (see docs/security.md and docs/hostile-inputs.md): a long constant-load soak against
# the `make serve` stack. The 1-minute version runs in the test suite (tests/integration/test_soak.py).
# `make soak DURATION=2h` overrides the length (DURATION set for `make loadtest` elsewhere does not
# leak in: only a command-line or environment DURATION counts here).
SOAK_DURATION ?= 30m
SOAK_ARGS     ?=

.PHONY: soak
soak: $(STAMP_VENV) ## Constant load at half the measured capacity (measured first if no report) for DURATION (default 30m); fails on any error or worker RSS growth >= 10%; report in reports/soak/<timestamp>/
	$(PY) -m loadtest.soak --duration $(if $(filter command line environment,$(origin DURATION)),$(DURATION),$(SOAK_DURATION)) $(SOAK_ARGS)

# Faults under load (docs/faults.md): a few minutes, loopback only. CHAOS_ARGS e.g.
# "--against-serve" (fault the `make serve` stack instead of one of its own), "--model digits",
# "--scenarios kill-loop stop-continue", "--rate 20".
CHAOS_ARGS ?=

.PHONY: chaos
chaos: $(STAMP_VENV) ## Faults on a schedule under steady open-loop load (kill a model's workers once and in a loop, SIGSTOP one past responseTimeout, kill Prometheus) on a stack of its own; every request's fate and each recovery time; fails when a request goes unanswered at the bound, the other model loses one, or a 200 is wrong; report in reports/chaos/<timestamp>/
	$(PY) -m loadtest.chaos $(CHAOS_ARGS)
