#!/usr/bin/env bash
# Install Debian's Chromium for the dashboard's browser tests (tests/dashboard), as root on Debian.
# The tests drive it with Python Playwright (executable_path=/usr/bin/chromium); never run
# `playwright install`, which downloads from a CDN. Without Chromium the browser tests skip.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "chromium ready ($(/usr/bin/chromium --version 2>/dev/null | head -1))"; exit 0
fi
if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null; then
  echo "chromium-up.sh: installs Chromium only as root on Debian; the browser tests will be skipped" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || {
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
}
echo "chromium ready ($(/usr/bin/chromium --version 2>/dev/null | head -1))"
