#!/usr/bin/env bash
# Installs the Debian packages the native stack and its tests use. Idempotent: installs only
# what is missing. Needs root (or sudo) the first time.
set -euo pipefail
packages=(prometheus wamerican wngerman wfrench wspanish witalian wportuguese wdutch)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
if ((${#missing[@]})); then
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  echo "Installing: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package enables a system Prometheus on :9090; ours runs on its own, so stop that one.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl stop prometheus || true; systemctl disable prometheus >/dev/null 2>&1 || true
fi
echo "System dependencies present."
