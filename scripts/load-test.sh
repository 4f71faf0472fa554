#!/usr/bin/env bash
# Load test of the real API server on loopback; README "Performance", "API", has its figures.
#
# Builds gold from N generated events (default 10M; reuses target/bench/<N>
# when it exists), starts `api` twice on 127.0.0.1 over it: open (plain
# HTTP, no tokens) and with a token and TLS (self-signed, see lib.sh
# `make_access`). Runs wrk against each, side by side, for:
#   1. /metrics for one service over one hour (60 rows),
#   2. /metrics/rollup for one service over one day, 1h buckets.
# Each server gets ROUNDS runs of DURATION, alternating (open, secured, open,
# ...), so that a shared machine's drift hits both alike. The servers run on
# CPU 1 and wrk (one thread) on CPU 0, so that the client's own TLS work
# (decrypting every response) is not charged to the server; each run prints
# the server's CPU use, to show that the server, not wrk, was the limit.
# Prints each run's req/s and latency percentiles, each server's median
# req/s, and the secured server's median as a share of the open one's.
# Installs wrk from Debian if missing.
#
# Usage: scripts/load-test.sh [EVENTS] [DURATION] [ROUNDS]   (default 10000000 5s 3)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-10000000}"
duration="${2:-5s}"
rounds="${3:-3}"
target="${CARGO_TARGET_DIR:-target}"
work="$target/bench/$events"

source scripts/lib.sh
need_debian wrk wrk
cargo build -q -p pipeline -p api
build_gold "$events" "$work" --seed 1

export API_LAUNCH="taskset -c 1"
SERVER_PIDS=()
trap 'for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done' EXIT
serve_open_and_secure "$work/out" "$work"
open_url="$OPEN_URL" secure_url="$SECURE_URL"
wait_for_gold "$open_url"
wait_for_gold "$secure_url"
curl -sf "$open_url/health"; echo

# `rate PID URL PATH [wrk args]`: one wrk run against the server PID; sets
# RATE (req/s), LATENCY (its latency lines) and CPU (the server's CPU use,
# percent of one core).
rate() {
  local pid="$1" url="$2" path="$3" out before after
  shift 3
  before="$(awk '{ print $14 + $15 }' "/proc/$pid/stat")"
  out="$(taskset -c 0 wrk --threads 1 --connections 32 --duration "$duration" --latency "$@" "$url$path")"
  after="$(awk '{ print $14 + $15 }' "/proc/$pid/stat")"
  if grep -q 'Non-2xx' <<<"$out"; then
    echo "non-2xx answers from $url$path" >&2
    exit 1
  fi
  LATENCY="$(grep -E '^ +(50|90|99)%' <<<"$out" | tr -s ' ' | tr '\n' ' ')"
  RATE="$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' <<<"$out")"
  CPU="$(( (after - before) * 100 / $(getconf CLK_TCK) / ${duration%s} ))"
}

median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

run() {
  local name="$1" path="$2" open=() secure=() i
  echo "== $name"
  echo "   open: $(curl -s -o /dev/null -w '%{http_code}, %{size_download} bytes' "$open_url$path"); " \
    "token and TLS: $(curl -sk -o /dev/null -w '%{http_code}, %{size_download} bytes' \
      -H "Authorization: Bearer $TOKEN" "$secure_url$path")"
  for i in $(seq "$rounds"); do
    rate "${SERVER_PIDS[0]}" "$open_url" "$path"
    open+=("$RATE")
    echo "   round $i: open          $RATE req/s, server CPU $CPU%, latency $LATENCY"
    rate "${SERVER_PIDS[1]}" "$secure_url" "$path" -H "Authorization: Bearer $TOKEN"
    secure+=("$RATE")
    echo "   round $i: token and TLS $RATE req/s, server CPU $CPU%, latency $LATENCY"
  done
  local o s
  o="$(echo "${open[*]}" | median)" s="$(echo "${secure[*]}" | median)"
  echo "   median: open $o req/s, token and TLS $s req/s = $(python3 -c "print(f'{$s / $o:.1%}')") of open"
}
run "1-hour single-service /metrics" "/metrics?service=checkout&from=2026-01-12T10:00:00Z&to=2026-01-12T11:00:00Z"
run "1-day single-service /metrics/rollup (1h buckets)" "/metrics/rollup?service=checkout&from=2026-01-12&to=2026-01-13&bucket=1h"
