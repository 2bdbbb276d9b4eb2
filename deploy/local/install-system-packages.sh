#!/usr/bin/env bash
# Java 17 and Maven for the local Kafka broker and schema registry (PostgreSQL is installed by
# `finsync stack up` itself). Debian's packages; needs root.
set -euo pipefail
if command -v java >/dev/null && command -v mvn >/dev/null; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "finsync needs Java 17+ and Maven: apt-get install openjdk-17-jre-headless maven" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q openjdk-17-jre-headless maven
