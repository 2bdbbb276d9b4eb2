#!/usr/bin/env bash
# Debian's Prometheus server for `finsync stack up --prometheus` (installed only when missing).
# finsync runs it itself, on its own config and data under .finsync/prometheus, so the
# package's own service is stopped. Needs root to install.
set -euo pipefail
if [ -x /usr/bin/prometheus ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "finsync stack up --prometheus needs Debian's Prometheus: apt-get install prometheus" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends prometheus
service prometheus stop >/dev/null 2>&1 || true
