# Containers: the compose stack of docker-compose.yml (see docker/README.md). docker/compose.sh
# picks the GPU or CPU compose files for this host; STACK_VARIANT=gpu|cpu overrides it.

# The root Makefile exports default ports for the native stack. Compose gives the shell
# environment precedence over .env, so pass on only the ports a user set (environment or command
# line) and let .env and the compose file's defaults decide the rest.
COMPOSE_PORT_VARS := INFERENCE_PORT MANAGEMENT_PORT METRICS_PORT PROMETHEUS_PORT
STACK := env $(foreach v,$(COMPOSE_PORT_VARS),$(if $(filter file,$(origin $(v))),-u $(v))) docker/compose.sh

.PHONY: build up down logs ps
build: ## Build the TorchServe image (GPU variant where Docker has the NVIDIA runtime, else CPU)
	@$(STACK) build
up: ## Start the compose stack, wait until every service is healthy, print the URLs (no engine? make serve)
	@$(STACK) up
down: ## Stop and remove the compose stack's containers (named volumes with data are kept)
	@$(STACK) down
logs: ## Follow the compose stack's logs
	@$(STACK) logs
ps: ## Show the compose stack's containers and their health
	@$(STACK) ps
