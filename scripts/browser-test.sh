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

if ! command -v chromium >/dev/null; then
  echo "Installing Chromium from Debian..."
  (apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)) >/dev/null
fi
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

# Starts `api` over $1 and sets the variable named $2 to its address.
start_api() {
  local log="$work/api-$2.out" addr
  RUST_LOG=warn "$target/debug/api" --config config/minutely.toml --output "$1" --bind 127.0.0.1:0 >"$log" &
  pids+=($!)
  for _ in $(seq 100); do
    addr="$(sed -n 's|^Listening on http://||p' "$log")"
    if [ -n "$addr" ] && curl -s -o /dev/null "http://$addr/health"; then
      printf -v "$2" '%s' "$addr"
      return
    fi
    sleep 0.1
  done
  echo "api over $1 did not start" >&2
  return 1
}
full="" empty=""
start_api "$work/out" full
start_api "$work/empty" empty
# Wait until the first reload has loaded gold.
for _ in $(seq 100); do
  if curl -sf "http://$full/health" >/dev/null; then break; fi
  sleep 0.1
done

node tests/browser/dashboard.mjs "http://$full" "http://$empty" "$shots"
