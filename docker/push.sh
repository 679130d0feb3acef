#!/usr/bin/env bash
# `make push`: tag the locally built images for a registry and push them.
#   docker/push.sh REGISTRY VERSION [--dry-run]
# torchserve-stack/torchserve:<variant> -> REGISTRY/torchserve-stack/torchserve:VERSION-<variant>
# torchserve-stack/locust:latest        -> REGISTRY/torchserve-stack/locust:VERSION
# Variants that were not built here are skipped with a note (a CPU host builds only cpu); at least
# one TorchServe image must exist. --dry-run tags, then prints the pushes instead of running them.
set -euo pipefail
registry=${1:-}
version=${2:-}
dry_run=${3:-}
if [[ -z $registry || -z $version ]]; then
  echo "usage: make push REGISTRY=registry.example.com[/path] VERSION=0.1.0 [DRY_RUN=1]" >&2
  exit 2
fi
registry=${registry%/}

declare -A targets=(
  [torchserve-stack/torchserve:gpu]="$registry/torchserve-stack/torchserve:$version-gpu"
  [torchserve-stack/torchserve:cpu]="$registry/torchserve-stack/torchserve:$version-cpu"
  [torchserve-stack/locust:latest]="$registry/torchserve-stack/locust:$version"
)
pushed=0
for source in torchserve-stack/torchserve:gpu torchserve-stack/torchserve:cpu torchserve-stack/locust:latest; do
  if ! docker image inspect "$source" >/dev/null 2>&1; then
    echo "push: $source not built here; skipped (make build, or STACK_VARIANT=gpu|cpu make build)" >&2
    continue
  fi
  target=${targets[$source]}
  docker tag "$source" "$target"
  if [[ $dry_run == --dry-run ]]; then
    echo "would push $target"
  else
    docker push "$target"
  fi
  [[ $source == *locust* ]] || pushed=$((pushed + 1))
done
if ((pushed == 0)); then
  echo "push: no TorchServe image built here: run make build first" >&2
  exit 1
fi
