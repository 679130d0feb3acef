# Performance (bench/): `make bench` measures the stack against its in-process limit and a FastAPI
# peer in one run (bench/results/latest.{json,md}); `make tune` searches each model's serving
# settings within its p95 SLO and writes the winner into its spec. Loopback only, bounded in time.
#   make bench BUDGET=240 REPEAT=1   # one shorter round (noisier); BENCH_ARGS="--workloads mobilenet"
#   make tune TUNE_BUDGET=120 TUNE_ARGS="--models digits --dry-run"
BUDGET      ?= 480
REPEAT      ?= 3
BENCH_ARGS  ?=
TUNE_BUDGET ?= 180
TUNE_ARGS   ?=

.PHONY: bench bench-quick tune
bench: $(STAMP_VENV) ## Limit vs TorchServe vs FastAPI peer, batching gain, latency at half load, cold start; REPEAT rounds of ~BUDGET s, medians; writes bench/results/latest.{json,md}
	$(PY) -m stackctl models
	$(PY) -m bench.run --budget $(BUDGET) --repeat $(REPEAT) $(BENCH_ARGS)
bench-quick: $(STAMP_VENV) ## The smallest bench run (every served model, seconds per step) into build/bench/quick/: does it work here?
	$(PY) -m stackctl models
	$(PY) -m bench.run --quick --out build/bench/quick $(BENCH_ARGS)
tune: $(STAMP_VENV) ## Sweep workers/threads, batchSize, maxBatchDelay per model within its p95 SLO, write the winner to its spec, rebuild archives (~TUNE_BUDGET s per model)
	$(PY) -m stackctl models
	$(PY) -m bench.tune --budget $(TUNE_BUDGET) $(TUNE_ARGS)
	$(PY) -m stackctl models
