#!/usr/bin/env bash
# Load test of the real API server on loopback; README "Performance", "API", has its figures.
#
# Builds gold from N generated events (default 10M; reuses target/bench/<N>
# when it exists), starts `api` on 127.0.0.1, and runs wrk against:
#   1. /metrics for one service over one hour (60 rows),
#   2. /metrics/rollup for one service over one day, 1h buckets.
# Prints req/s and latency percentiles. Installs wrk from Debian if missing.
#
# Usage: scripts/load-test.sh [EVENTS] [DURATION]     (default 10000000 15s)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-10000000}"
duration="${2:-15s}"
target="${CARGO_TARGET_DIR:-target}"
work="$target/bench/$events"

source scripts/lib.sh
need_debian wrk wrk
cargo build -q -p pipeline -p api
build_gold "$events" "$work" --seed 1

trap 'kill ${API_PID:-} 2>/dev/null || true' EXIT
RUST_LOG="warn,warp::server=off" start_api "$work/out" "$work/api.out"
addr="$API_ADDR"
wait_for_gold "$addr"
curl -sf "http://$addr/health"; echo

run() {
  echo "== $1"
  echo "   $(curl -s -o /dev/null -w '%{http_code}, %{size_download} bytes' "http://$addr$2")"
  wrk --threads 2 --connections 64 --duration "$duration" --latency "http://$addr$2" | grep -E 'Requests/sec|^ +(50|75|90|99)%|Latency|Non-2xx'
}
run "1-hour single-service /metrics" "/metrics?service=checkout&from=2026-01-12T10:00:00Z&to=2026-01-12T11:00:00Z"
run "1-day single-service /metrics/rollup (1h buckets)" "/metrics/rollup?service=checkout&from=2026-01-12&to=2026-01-13&bucket=1h"
