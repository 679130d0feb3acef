#!/usr/bin/env bash
# `make base-images`: the base images the Dockerfile and the compose services run here need,
# built locally from Debian packages, for hosts that reach a Debian mirror but no image registry
# (air-gapped, or a registry blocked by policy). A no-op for each image that already exists.
#   torchserve-stack/debian:bookworm     debootstrap --variant=minbase, `docker import`ed
#   torchserve-stack/prometheus:bookworm Debian's prometheus package on that base
# The mirror is the one this host's apt uses (DEBIAN_MIRROR overrides it), so nothing here names
# a package host. Needs root (debootstrap) and a running engine (make engine).
#
# Reproducible bases: point DEBIAN_MIRROR at a dated snapshot of the archive (a URL whose path
# holds the timestamp, e.g. <snapshot mirror>/archive/debian/20250520T000000Z) and give the image
# its own tag (BASE_IMAGE=torchserve-stack/debian:bookworm-20250520, also passed to make build):
# every package, in this base and in the images' apt-get steps, is then the one of that date.
# A snapshot's Release files are past their Valid-Until, so for such a URL the base's apt is told
# not to check it. The mirror is recorded in the image (label org.torchserve-stack.debian-mirror).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
base=${BASE_IMAGE:-torchserve-stack/debian:bookworm}
prometheus=${PROMETHEUS_IMAGE:-torchserve-stack/prometheus:bookworm}

have() { docker image inspect "$1" >/dev/null 2>&1; }

# The first http(s) URI of a source that carries bookworm's main component, from deb822
# (*.sources) or one-line (sources.list) files.
host_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk '/^URIs:/ {u=$2} /^Suites:/ {s=$0} /^$/ {if (u && s ~ / bookworm( |$)/) {print u; exit}; u=""; s=""}
         END {if (u && s ~ / bookworm( |$)/) print u}' "$f"
  done
  grep -hE '^deb\s+(\[[^]]*\]\s+)?https?://\S+\s+bookworm\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | sed -E 's/^deb\s+(\[[^]]*\]\s+)?(\S+).*/\2/' || true
}

if ! have "$base"; then
  mirror=${DEBIAN_MIRROR:-$(host_mirror | head -n 1)}
  [ -n "$mirror" ] || { echo "base-images: no bookworm source in /etc/apt; set DEBIAN_MIRROR" >&2; exit 1; }
  command -v debootstrap >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  echo "base-images: debootstrap bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  # Keep images small and reproducible: no apt lists or caches in the layer.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  if [[ $mirror =~ /[0-9]{8}T[0-9]{6}Z/?$ ]]; then
    echo 'Acquire::Check-Valid-Until "false";' >"$rootfs/etc/apt/apt.conf.d/10snapshot"
  fi
  tar -C "$rootfs" -c . | docker import \
    --change "LABEL org.torchserve-stack.debian-mirror=$mirror" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$base" >/dev/null
  echo "base-images: $base"
fi

if ! have "$prometheus"; then
  echo "base-images: building $prometheus"
  docker build -q -t "$prometheus" --build-arg BASE_IMAGE="$base" \
    -f docker/prometheus.Dockerfile docker/ >/dev/null
  echo "base-images: $prometheus"
fi
echo "base-images: $base, $prometheus"
