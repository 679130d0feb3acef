# Performance (bench/): `make bench` measures the stack against its true in-process limit and three
# peers in one run (bench/results/latest.{json,md}); `make tune` searches each model's serving
# settings within its p95 SLO and writes the winner into its spec. Loopback only, bounded in time.
#   make bench BUDGET=240 REPEAT=1   # one shorter round (noisier); BENCH_ARGS="--workloads mobilenet"
#   make tune TUNE_BUDGET=120 TUNE_ARGS="--models digits --dry-run"
BUDGET      ?= 230
REPEAT      ?= 3
BENCH_ARGS  ?=
TUNE_BUDGET ?= 180
TUNE_ARGS   ?=

# BentoML's pins do not fit beside ours: its own venv, with our torch pins (pip takes them from local
# wheels here). Where it cannot be built (no network on a GPU host) the bench reports the BentoML
# peer as "not run" instead of failing.
BENTOML_VENV := .venv-bentoml
BENTOML_PINS := bentoml==1.4.40
$(BENTOML_VENV)/.stamp: mk/bench.mk requirements.txt
	@rm -rf $(BENTOML_VENV) && $$($(PY) -c 'import sys; print(sys._base_executable)') -m venv $(BENTOML_VENV) && \
	  $(BENTOML_VENV)/bin/pip install -q --retries 1 --timeout 15 $(BENTOML_PINS) \
	    $$(grep -E '^(torch|torchvision|torchserve|numpy|pillow|pybase64|onnx|onnxruntime|PyYAML|psutil)==' requirements.txt) && \
	  touch $@ || echo "bench-peers: $(BENTOML_VENV) not built; the bench reports the BentoML peer as not run"

.PHONY: bench bench-quick bench-peers tune
bench-peers: $(BENTOML_VENV)/.stamp ## The BentoML peer's own venv (.venv-bentoml); LitServe and FastAPI are in .venv
bench: $(STAMP_VENV) bench-peers ## TorchServe vs its true limit, FastAPI/LitServe/BentoML peers (same processes), batching gain, half load, the low-load floor, cold start; REPEAT rounds, medians; writes bench/results/latest.{json,md} and PNGs
	$(PY) -m stackctl models
	$(PY) -m bench.run --budget $(BUDGET) --repeat $(REPEAT) $(BENCH_ARGS)
bench-quick: $(STAMP_VENV) ## The smallest bench run (every served model, seconds per step) into build/bench/quick/: does it work here?
	$(PY) -m stackctl models
	$(PY) -m bench.run --quick --out build/bench/quick $(BENCH_ARGS)
tune: $(STAMP_VENV) ## Sweep workers/threads, batchSize, maxBatchDelay per model within its p95 SLO, write the winner to its spec, rebuild archives (~TUNE_BUDGET s per model)
	$(PY) -m stackctl models
	$(PY) -m bench.tune --budget $(TUNE_BUDGET) $(TUNE_ARGS)
	$(PY) -m stackctl models
