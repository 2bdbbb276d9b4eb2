#!/usr/bin/env bash
# Debian's Chromium for the console's browser tests, which Playwright drives through
# executable_path: Playwright's own browser downloads are never used. Needs root to install.
set -euo pipefail
if command -v chromium >/dev/null; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "the console's browser tests need Debian's Chromium: apt-get install chromium" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q chromium
