#!/usr/bin/env bash
# Browser test of the dashboard (run by .ci/run).
#
# Installs Debian's Chromium and playwright-core (pinned, tests/browser/)
# when missing, builds gold from the committed sample input, starts the real
# `api` binary twice on 127.0.0.1 (once over that gold, once over an empty
# output), runs tests/browser/dashboard.mjs against both, and stops the
# servers by PID. Screenshots land in target/browser/.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
shots="$target/browser"
mkdir -p "$shots"

source scripts/lib.sh
need_debian chromium chromium
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >/dev/null
cargo build -q -p pipeline -p api

serve_sample_and_empty
node tests/browser/dashboard.mjs "http://$SAMPLE_ADDR" "http://$EMPTY_ADDR" "$shots"
