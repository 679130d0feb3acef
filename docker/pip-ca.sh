#!/usr/bin/env bash
# `pip` for RUN steps, trusting one more CA when the build got one as the BuildKit secret `ca`
# (docker build --secret id=ca,src=FILE): pip checks certificates against its own bundle, which
# lacks a TLS-intercepting proxy's CA. The combined bundle lives in /tmp only while pip runs, so
# the CA never reaches a layer. Without the secret this is plain pip.
set -euo pipefail
secret=/run/secrets/ca
if [ ! -s "$secret" ]; then exec pip "$@"; fi
bundle=$(mktemp)
trap 'rm -f "$bundle"' EXIT
cat /etc/ssl/certs/ca-certificates.crt "$secret" >"$bundle"
PIP_CERT=$bundle pip "$@"
