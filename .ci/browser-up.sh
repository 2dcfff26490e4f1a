#!/usr/bin/env bash
# The browser tests of `backprop serve` drive a real headless Chromium through chromedriver.
# Installs Debian's chromium and chromium-driver when either is missing, and fails (exit 1,
# saying why) when that is not possible: under CI=true those tests fail without them.
set -euo pipefail
have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
if have; then
    echo "browser: $(chromium --version 2>/dev/null | head -1); $(chromedriver --version | head -1)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser-up: chromium/chromedriver missing and no apt-get to install them" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "browser-up: chromium/chromedriver missing; installing needs root (or sudo)" >&2
        exit 1
    fi
fi
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver; } >/tmp/browser-up.log 2>&1; then
    echo "browser-up: installing chromium and chromium-driver failed:" >&2
    tail -20 /tmp/browser-up.log >&2
    exit 1
fi
if ! have; then
    echo "browser-up: chromium and chromium-driver installed, yet not both on PATH" >&2
    exit 1
fi
echo "browser: $(chromium --version 2>/dev/null | head -1); $(chromedriver --version | head -1)"
