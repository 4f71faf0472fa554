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

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

RUST_LOG=warn "$target/debug/pipeline" run --config config/minutely.toml --input input --output "$work/out" >/dev/null
mkdir -p "$work/empty"

RUST_LOG=warn start_api "$work/out" "$work/api-full.out"
pids+=("$API_PID")
full="$API_ADDR"
RUST_LOG=warn start_api "$work/empty" "$work/api-empty.out"
pids+=("$API_PID")
empty="$API_ADDR"
wait_for_gold "$full"

node tests/browser/dashboard.mjs "http://$full" "http://$empty" "$shots"
