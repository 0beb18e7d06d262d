#!/bin/sh
# The container's main process (under tini): runs `promha run --config /etc/promha/promha.yml` and
# starts it again when it exits, as systemd's Restart=always does on a host. That way its supervised
# Prometheus and Alertmanager keep running, and scraping, while promha restarts (a node downed on the
# minority side exits 3, the losing side of a healed pair 75; docs/reference.md, "Exit codes"), and the next
# promha adopts them. `docker stop` (SIGTERM) stops promha (it hands its lease over) and then them.
#
# Arguments are passed to `promha run` (e.g. --set timing.leaseMs=3000). Settings also come from
# PROMHA_* variables (PROMHA_NODE__NAME=node-a). A first start copies /etc/promha/initial-conf into
# an empty conf dir, so that every node of a demo starts from the same tree.
set -u
config=/etc/promha/promha.yml
child=0

stop() {
  if [ "$child" -gt 0 ]; then kill -TERM "$child" 2>/dev/null; wait "$child"; fi
  promha servers stop --config "$config" >&2
  exit 0
}
trap stop TERM INT

if [ -d /etc/promha/initial-conf ] && [ -z "$(ls -A /etc/promha/conf 2>/dev/null)" ]; then
  cp -R /etc/promha/initial-conf/. /etc/promha/conf/
fi

while :; do
  promha run --config "$config" "$@" &
  child=$!
  wait "$child"
  code=$?
  child=0
  case "$code" in
    0) promha servers stop --config "$config" >&2; exit 0 ;;
    64) echo "promha-entrypoint: promha refused its settings (exit 64, the line above names the file and field); not starting it again" >&2; exit 64 ;;
  esac
  echo "promha-entrypoint: promha exited with code $code; starting it again in 2 s (Prometheus and Alertmanager keep running)" >&2
  sleep 2
done
