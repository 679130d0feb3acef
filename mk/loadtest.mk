# Load testing (loadtest/): headless runs with reports, the Locust web UI, and capacity search.
# Every variable is overridable: make loadtest HOST=http://10.0.0.5:8080 USERS=50 DURATION=5m
HOST            ?= http://127.0.0.1:$(INFERENCE_PORT)
USERS           ?= 10
SPAWN_RATE      ?= 5
DURATION        ?= 60s
# step | arrival | none (see loadtest/shapes.py); a shape replaces USERS/SPAWN_RATE/DURATION
SHAPE           ?= none
# extra options for loadtest.run, e.g. LOADTEST_ARGS="--bad-request-share 0.05 --user-rate 2"
LOADTEST_ARGS   ?=
METRICS_URL     ?= http://127.0.0.1:$(METRICS_PORT)/metrics
# seconds per model, at most (an estimate and ~7 steps of 11 s); a search cut short reports "≥ X".
# CAPACITY_ARGS e.g. "--tolerance 0.1 --models digits"
CAPACITY_BUDGET ?= 90
CAPACITY_ARGS   ?=

.PHONY: loadtest
loadtest: $(STAMP_VENV) ## Headless Locust run against HOST (USERS, SPAWN_RATE, DURATION, SHAPE); CSV, HTML, PNG and SLO verdict in reports/loadtest/<timestamp>/
	$(PY) -m loadtest.run --host '$(HOST)' --users $(USERS) --spawn-rate $(SPAWN_RATE) --duration $(DURATION) --shape $(SHAPE) $(LOADTEST_ARGS)

.PHONY: loadtest-ui
loadtest-ui: $(STAMP_VENV) ## Locust web UI on http://127.0.0.1:8089 against HOST
	$(PY) -m locust -f loadtest/locustfile.py --config loadtest/locust.conf --host '$(HOST)' --web-host 127.0.0.1 --web-port 8089

.PHONY: capacity
capacity: $(STAMP_VENV) ## Per model: closed-loop estimate, then bisection of the open-loop rate within its p95 SLO and no 5xx (CAPACITY_BUDGET s per model; "≥ X" when cut short); reports/loadtest/capacity-<timestamp>/
	$(PY) -m loadtest.capacity --host '$(HOST)' --metrics '$(METRICS_URL)' --budget $(CAPACITY_BUDGET) $(CAPACITY_ARGS)
