# Observability (config/prometheus/, config/grafana/, docs/metrics.md): the SLO alert rules are
# generated from config/models/*.yaml; promtool checks the config, every rule file and the rule
# unit tests. Needs Prometheus's promtool (Debian package `prometheus`: make system-deps).
PROMTOOL ?= promtool

.PHONY: rules
rules: $(STAMP_VENV) ## Regenerate the SLO alert rules from the model specs (Prometheus file + k8s PrometheusRule)
	$(PY) -m stackctl.deploy.rules
	$(PY) -m stackctl.deploy.k8s_monitoring

.PHONY: promtool-check
promtool-check: ## promtool: check prometheus.yml, every rule file, run the alert unit tests, and the generated rules' drift
	@command -v $(PROMTOOL) >/dev/null || { echo "promtool not found: run 'make system-deps' (Debian package prometheus)"; exit 1; }
	$(PROMTOOL) check config config/prometheus/prometheus.yml
	$(PROMTOOL) check rules config/prometheus/rules/*.yml
	$(PROMTOOL) test rules config/prometheus/tests/*.test.yml
	$(PY) -m stackctl.deploy.rules --check
