#!/usr/bin/env bash
# Installs Debian's Chromium and its WebDriver (chromedriver) for `make browser-test`,
# unless both are there already.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then "$@"; else sudo "$@"; fi
}
echo "setup-browser: installing chromium and chromium-driver"
as_root apt-get update
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y --no-install-recommends chromium chromium-driver
