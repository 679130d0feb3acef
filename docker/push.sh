#!/usr/bin/env bash
# `make push`: build every image, push it to a registry and record the pushed digests where the
# Kubernetes overlays deploy them from.
#   docker/push.sh REGISTRY VERSION [--dry-run]
# torchserve-stack/torchserve:gpu   -> REGISTRY/torchserve-stack/torchserve:VERSION-gpu
# torchserve-stack/torchserve:cpu   -> REGISTRY/torchserve-stack/torchserve:VERSION-cpu
# torchserve-stack/locust:latest    -> REGISTRY/torchserve-stack/locust:VERSION
#
# Every variant is built here, whatever this host has: building the gpu image needs no GPU and
# no NVIDIA runtime (it is the cpu image's layers plus the NVIDIA_* settings; docker/Dockerfile),
# so a CI runner without GPUs pushes it too. A variant that fails to build or to push, or whose
# digest the registry did not report, stops the push with a non-zero exit: no partial release
# is ever recorded.
#
# Then the digests are recorded in k8s/overlays/{gpu,cpu}/release/kustomization.yaml
# (stackctl/deploy/k8s_release.py), so `kubectl apply -k k8s/overlays/gpu`, typed as written, deploys
# exactly the bytes pushed here. K8S_OVERLAYS points the record at another overlays folder.
# --dry-run builds and tags, then prints the pushes instead of running them (nothing recorded).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
registry=${1:-}
version=${2:-}
dry_run=${3:-}
if [[ -z $registry || -z $version ]]; then
  echo "usage: make push REGISTRY=registry.example.com[/path] VERSION=0.1.0 [DRY_RUN=1]" >&2
  exit 2
fi
if [[ ! $version =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}$ ]]; then
  echo "push: VERSION '$version' is not a valid image tag" >&2
  exit 2
fi
registry=${registry%/}
python=${PYTHON:-.venv/bin/python}
overlays=${K8S_OVERLAYS:-k8s/overlays}

# build target, local image, pushed repository, pushed tag
images=(
  "gpu torchserve-stack/torchserve:gpu $registry/torchserve-stack/torchserve $version-gpu"
  "cpu torchserve-stack/torchserve:cpu $registry/torchserve-stack/torchserve $version-cpu"
  "loadtest torchserve-stack/locust:latest $registry/torchserve-stack/locust $version"
)

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for entry in "${images[@]}"; do
  read -r target source _ _ <<<"$entry"
  echo "push: building $source (docker/build.sh $target)"
  if ! docker/build.sh "$target" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "push: FAILED to build $source (docker/build.sh $target); nothing pushed" >&2
    exit 1
  fi
done

declare -A digest
for entry in "${images[@]}"; do
  read -r target source repository tag <<<"$entry"
  docker tag "$source" "$repository:$tag"
  if [[ $dry_run == --dry-run ]]; then
    echo "would push $repository:$tag"
    continue
  fi
  if ! docker push "$repository:$tag"; then
    echo "push: FAILED to push $repository:$tag; the release is not recorded" >&2
    exit 1
  fi
  # The registry's manifest digest, as the engine recorded it for this repository.
  ref=$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$repository:$tag" \
        | grep -m 1 -F "$repository@sha256:" || true)
  if [[ -z $ref ]]; then
    echo "push: no digest for $repository:$tag after the push; the release is not recorded" >&2
    exit 1
  fi
  digest[$target]=$ref
  echo "pushed $repository:$tag = $ref"
done
[[ $dry_run == --dry-run ]] && exit 0

for variant in gpu cpu; do
  "$python" -m stackctl.deploy.k8s_release record --overlays "$overlays" --overlay "$variant" --version "$version" \
    --image "torchserve-stack/torchserve=${digest[$variant]}" \
    --image "torchserve-stack/locust=${digest[loadtest]}"
done
echo "push: kubectl apply --server-side -k $overlays/gpu (or cpu) now deploys exactly these digests;" \
     "commit $overlays/*/release/ with the release"
