#!/usr/bin/env bash
# Browser test of the dashboard (run by .ci/run).
#
# Installs Debian's Chromium and playwright-core (pinned, tests/browser/)
# when missing, builds gold from the committed sample input and from 300k
# generated events over 1,000 services, starts the real `api` binary on
# 127.0.0.1 over that gold (open, and with a token and TLS), over the
# 1,000 services and over an empty output, runs tests/browser/dashboard.mjs
# against them, and stops the servers by PID. Screenshots land in
# target/browser/.
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
build_gold 300000 "$WORK/many" --services 1000 --span-minutes 1440 --seed 3
RUST_LOG="warn,warp::server=off" start_api "$WORK/many/out" "$WORK/api-many.log"
SERVER_PIDS+=("$API_PID")
wait_for_gold "$API_URL"
NODE_EXTRA_CA_CERTS="$TLS_CERT" node tests/browser/dashboard.mjs "http://$SAMPLE_ADDR" "http://$EMPTY_ADDR" \
  "$SECURE_URL" "$TOKEN" "$API_URL" "$shots"
