# Static checks (pyproject.toml holds their settings): ruff over the whole tree, mypy on the code
# that runs inside TorchServe workers, the tooling every target calls, the load test and the bench.
# `.ci/run` runs it through `make test`.
.PHONY: lint
lint: $(STAMP_VENV) ## ruff (whole tree) and mypy (handlers/, stackctl/, loadtest/, bench/); fails on any finding
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy handlers stackctl loadtest bench
