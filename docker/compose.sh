#!/usr/bin/env bash
# `docker compose` for this repository, with the compose files that fit this host:
#   docker-compose.yml                          where the Docker engine has the NVIDIA runtime
#   docker-compose.yml + docker-compose.cpu.yml everywhere else
# STACK_VARIANT=gpu|cpu (environment or .env) overrides the detection. Called by mk/docker.mk
# (make build/up/down/logs/ps); `docker/compose.sh <any compose command>` works too.
#   build   builds the images with docker/build.sh (BuildKit through `docker build`, which passes
#           the CA secret and the git labels; compose's own build does neither)
#   up [SERVICE...]  starts the built images (all services, or the ones named) and waits for health
#   variant prints gpu or cpu
#   check   only checks that an engine and Compose v2 answer
#
# Without a reachable engine it stops at once with a message that points to `make serve`
# (tests/deploy/test_docker.py holds it to that).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command_name=${1:-}
if [[ -z $command_name ]]; then
  echo "usage: docker/compose.sh up|down|build|logs|ps|<docker compose command> [args...]" >&2
  exit 2
fi
shift

native_hint="To run the same stack without Docker (TorchServe + Prometheus on loopback): make serve"

fail() {
  printf '%s: %s\n%s\n' "$command_name" "$1" "$native_hint" >&2
  exit 1
}

command -v docker >/dev/null 2>&1 \
  || fail "the docker CLI is not installed (https://docs.docker.com/engine/install/)."

# `docker info` answers at once when no daemon listens; the timeout covers a remote DOCKER_HOST
# that does not answer at all.
if ! runtimes=$(timeout 10 docker info --format '{{json .Runtimes}}' 2>&1); then
  reason=$(grep -m1 -iE 'cannot connect|error|denied' <<<"$runtimes" || true)
  fail "no Docker engine is reachable${reason:+ (${reason})}. Start Docker Engine, or check DOCKER_HOST and your permissions on the Docker socket."
fi

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif docker-compose version --short 2>/dev/null | grep -q '^2\.'; then
  compose=(docker-compose)
else
  fail "Docker Compose v2 is not installed (the docker-compose-plugin package, https://docs.docker.com/compose/install/linux/)."
fi

# .env is read by compose itself; this script needs some of its settings before compose runs.
dotenv() { if [ -f .env ]; then sed -n "s/^$1=//p" .env | tail -n 1 | tr -d "\"'"; fi; }
variant=${STACK_VARIANT:-$(dotenv STACK_VARIANT)}
if [[ -z $variant ]]; then
  if grep -q '"nvidia"' <<<"$runtimes"; then variant=gpu; else variant=cpu; fi
fi
case $variant in
  gpu) files=(-f docker-compose.yml) ;;
  cpu) files=(-f docker-compose.yml -f docker-compose.cpu.yml) ;;
  *) echo "STACK_VARIANT must be gpu or cpu, not '$variant'" >&2; exit 2 ;;
esac

# Image labels (org.opencontainers.image.*) from git, stable across rebuilds of one commit.
if git rev-parse --git-dir >/dev/null 2>&1; then
  export STACK_REVISION=${STACK_REVISION:-$(git rev-parse HEAD)}
  export STACK_CREATED=${STACK_CREATED:-$(git log -1 --format=%cI)}
  export STACK_VERSION=${STACK_VERSION:-$(git describe --tags --always)}
fi

# The Prometheus image: PROMETHEUS_IMAGE (environment or .env), else the one `make base-images`
# built from Debian's package where it exists (hosts without a registry), else prom/prometheus.
if [[ -z ${PROMETHEUS_IMAGE:-$(dotenv PROMETHEUS_IMAGE)} ]] \
    && docker image inspect torchserve-stack/prometheus:bookworm >/dev/null 2>&1; then
  export PROMETHEUS_IMAGE=torchserve-stack/prometheus:bookworm
fi

# Grafana's password is required to create its container, not to build, list, read logs or
# remove, nor to start a subset without Grafana; don't make those fail on it.
wants_grafana=true
if [[ $command_name == up && $# -gt 0 && " $* " != *" grafana "* ]]; then
  wants_grafana=false
fi
if [[ ($command_name != up || $wants_grafana == false) && -z ${GRAFANA_ADMIN_PASSWORD:-$(dotenv GRAFANA_ADMIN_PASSWORD)} ]]; then
  export GRAFANA_ADMIN_PASSWORD=not-used-by-$command_name
fi

compose+=("${files[@]}")
case $command_name in
  up)
    echo "Starting the ${variant^^} stack (${files[*]})"
    # Images come from `make build` (docker/build.sh), not from compose. --wait: returns when
    # every service started is healthy, or fails.
    if ! "${compose[@]}" up --detach --wait --wait-timeout "${STACK_WAIT_TIMEOUT:-600}" "$@"; then
      "${compose[@]}" ps >&2 || true
      echo "The stack did not become healthy; see: make logs" >&2
      exit 1
    fi
    # Ask compose where each port ended up, so .env and environment overrides are honoured.
    url() {
      local address
      address=$("${compose[@]}" port "$1" "$2" 2>/dev/null | head -n 1) || true
      address=${address/0.0.0.0/localhost}
      echo "http://${address:-(not published)}$3"
    }
    running=$("${compose[@]}" ps --services --status running)
    has() { grep -qx "$1" <<<"$running"; }
    echo
    echo "Stack is up and healthy (${variant}): ${running//$'\n'/ }"
    ! has torchserve || echo "  Inference:   $(url torchserve 8080 '/predictions/<model>')"
    ! has torchserve || echo "  Management:  $(url torchserve 8081 /models)   (this host only)"
    ! has grafana || echo "  Grafana:     $(url grafana 3000 /)   (GRAFANA_ADMIN_USER / GRAFANA_ADMIN_PASSWORD from .env)"
    ! has prometheus || echo "  Prometheus:  $(url prometheus 9090 /)"
    echo "Stop with: make down"
    ;;
  build)
    docker/build.sh "$variant" "$@"
    exec docker/build.sh loadtest "$@"
    ;;
  variant) echo "$variant" ;;
  check) ;;   # the engine and Compose checks above passed
  down) exec "${compose[@]}" --profile loadtest down "$@" ;;
  logs) exec "${compose[@]}" logs --follow --tail=200 "$@" ;;
  *) exec "${compose[@]}" "$command_name" "$@" ;;
esac
