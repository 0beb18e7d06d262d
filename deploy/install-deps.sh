#!/usr/bin/env bash
# Installs Debian's Prometheus, Alertmanager and node_exporter when they are missing; with --tests also
# chromium, for the tests of the web page (Playwright drives Debian's browser), iptables for the network-fault tests, PostgreSQL for the journal and tie-breaker tests, VictoriaMetrics for the remote-write tests, and Docker (engine,
# docker-compose, debootstrap) for the tests of the image and the compose demos. Starts no daemon:
# PromHa (or the tests) start them as their own processes; the Docker test runs a dockerd of its own.
set -euo pipefail
need=()
[ -x /usr/bin/prometheus ] || need+=(prometheus)
[ -x /usr/bin/prometheus-alertmanager ] || need+=(prometheus-alertmanager)
[ -x /usr/bin/prometheus-node-exporter ] || need+=(prometheus-node-exporter)
if [ "${1:-}" = "--tests" ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
  [ -x /usr/sbin/dockerd ] || need+=(docker.io)
  [ -x /usr/bin/docker-compose ] || need+=(docker-compose)
  [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
  # the network-fault tests reject and drop packets with iptables inside their namespaces
  [ -x /usr/sbin/iptables ] || need+=(iptables)
  # the remote-write tests write to a VictoriaMetrics of their own
  [ -x /usr/bin/victoria-metrics ] || need+=(victoria-metrics)
  # the journal and tie-breaker tests start a PostgreSQL of their own
  [ -n "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null)" ] || need+=(postgresql)
fi
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
