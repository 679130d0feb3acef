#!/usr/bin/env bash
# Builds this repository's images with BuildKit:
#   docker/build.sh gpu|cpu|loadtest [extra docker build args...]
# -> torchserve-stack/torchserve:gpu, torchserve-stack/torchserve:cpu, torchserve-stack/locust:latest
#
# Settings (environment):
#   CA_BUNDLE        a PEM file pip inside the build trusts too, passed as the BuildKit secret
#                    `ca` (never stored in a layer). Default: this host's system bundle, so a CA
#                    installed on the host (TLS-intercepting proxy) works in the build as well.
#                    CA_BUNDLE= (empty) passes none.
#   BASE_IMAGE       default torchserve-stack/debian:bookworm (make base-images); with internet
#                    access debian:bookworm-slim works as well
#   TORCH_INDEX_URL  where torch and torchvision come from (default PyPI: CUDA builds, run on CPU)
#
# Secrets need BuildKit in the client: `docker build --secret` (Engine 18.09+ with
# DOCKER_BUILDKIT=1) or buildx. The first `docker` on PATH may be a newer client without buildx
# that refuses --secret, so take the first client that lists it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
variant=${1:?usage: docker/build.sh gpu|cpu|loadtest [docker build args...]}
shift
export DOCKER_BUILDKIT=1

client=
for candidate in docker /usr/bin/docker /usr/local/bin/docker; do
  if command -v "$candidate" >/dev/null && "$candidate" build --help 2>/dev/null | grep -q -- '--secret'; then
    client=$candidate; break
  fi
done
[ -n "$client" ] || { echo "build: no docker client here accepts --secret (install buildx, or Debian's docker.io: make engine)" >&2; exit 1; }

case $variant in
  gpu|cpu) args=(--target runtime --build-arg "VARIANT=$variant" -t "torchserve-stack/torchserve:$variant") ;;
  loadtest) args=(--target loadtest -t torchserve-stack/locust:latest) ;;
  *) echo "build: gpu, cpu or loadtest, not '$variant'" >&2; exit 2 ;;
esac

ca=${CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}
if [ -n "$ca" ]; then
  [ -r "$ca" ] || { echo "build: CA_BUNDLE $ca is not readable" >&2; exit 1; }
  args+=(--secret "id=ca,src=$ca")
fi
[ -z "${BASE_IMAGE:-}" ] || args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
[ -z "${TORCH_INDEX_URL:-}" ] || args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
if git rev-parse --git-dir >/dev/null 2>&1; then
  args+=(--build-arg "VERSION=$(git describe --tags --always)" --build-arg "REVISION=$(git rev-parse HEAD)"
         --build-arg "CREATED=$(git log -1 --format=%cI)")
fi
exec "$client" build -f docker/Dockerfile "${args[@]}" "$@" .
