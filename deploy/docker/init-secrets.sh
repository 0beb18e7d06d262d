#!/bin/sh
# One-shot service of the compose demos: a cluster CA, a certificate per node and an admin token,
# made once in the shared secrets volume (kept when it already holds them). The CA's key goes to a
# volume that only this service mounts, so that no node holds it. In production make them on an
# admin host instead (`promha certs init`, `promha token new`) and give each host only its own key.
#   promha-init-secrets node-a node-b node-c
set -eu
secrets=/etc/promha/secrets
if [ -f "$secrets/ca.crt" ] && [ -f "$secrets/admin.token" ]; then
  echo "promha-init-secrets: $secrets already holds a CA and a token; nothing to do"
  exit 0
fi
args=""
for n in "$@"; do args="$args --node $n"; done
# shellcheck disable=SC2086
promha certs init --dir /etc/promha/ca $args
for n in "$@"; do mv "/etc/promha/ca/$n.crt" "/etc/promha/ca/$n.key" "$secrets/"; done
cp /etc/promha/ca/ca.crt "$secrets/ca.crt"
promha token new --out "$secrets/admin.token"
echo "promha-init-secrets: CA, certificates for: $*, and the admin token are in $secrets"
