#!/usr/bin/env bash
# Scale test of the API at a year of history; README "Performance", "API", has its figures.
#
# Builds gold from EVENTS generated events spread over 365 days and 20
# services (10M events give about 6M gold rows; reuses target/bench/ when
# present), starts `api` on 127.0.0.1 with the default memory budget, and
# prints:
#   1. cold reads: a 1-hour single-service /metrics on 200 dates outside the
#      hot window, one client, each date once (every read goes to the files);
#   2. hot window: wrk, 64 connections, the same query on the newest date;
#   3. a whole-year rollup of one service in 1d buckets (3 tries);
#   4. the server's peak RSS (VmHWM) and its own metrics (/-/metrics),
# after the time from start until gold is served (every partition indexed).
# Installs wrk from Debian if missing.
#
# Usage: scripts/api-scale.sh [EVENTS] [DURATION]     (default 10000000 15s)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-10000000}"
duration="${2:-15s}"
target="${CARGO_TARGET_DIR:-target}"
work="$target/bench/year-$events"

source scripts/lib.sh
need_debian wrk wrk
cargo build -q -p pipeline -p api
build_gold "$events" "$work" --seed 7 --start 2025-01-01 --span-minutes 525600 --services 20

# The shipped config: default memory budget (256 MiB).
trap 'kill ${API_PID:-} 2>/dev/null || true' EXIT
started="$(date +%s.%N)"
RUST_LOG="warn,warp::server=off" start_api "$work/out" "$work/api.out"
api_pid="$API_PID" addr="$API_ADDR"
wait_for_gold "$addr"
echo "== gold indexed and served $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$started" "$(date +%s.%N)") s after start"
echo "== health"
curl -sf "http://$addr/health"; echo
echo "   startup RSS: $(awk '/VmRSS/ {print $2 / 1024 " MiB"}' "/proc/$api_pid/status")"

echo "== cold: 1-hour single-service /metrics on 200 dates outside the hot window, one client"
python3 - "$addr" <<'EOF'
import datetime, http.client, json, sys, time
host, port = sys.argv[1].split(":")
conn = http.client.HTTPConnection(host, int(port))
def get(path):
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    return r.status, body
first = datetime.date(2025, 1, 1)
times, rows = [], 0
for d in range(200):
    day = first + datetime.timedelta(days=d)
    path = f"/metrics?service=checkout&from={day}T12:00:00Z&to={day}T13:00:00Z"
    t = time.perf_counter()
    status, body = get(path)
    times.append((time.perf_counter() - t) * 1000)
    assert status == 200, (status, body[:200])
    rows += json.loads(body)["meta"]["count"]
times.sort()
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(f"   {len(times)} requests, {rows} rows: p50 {pick(0.5):.2f} ms, p99 {pick(0.99):.2f} ms, max {times[-1]:.2f} ms")
status, body = get("/-/metrics")
for line in body.decode().splitlines():
    if line.startswith(("minutely_api_cache_", "minutely_api_gold_rows")):
        print("  ", line)
EOF

last="$(curl -sf "http://$addr/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["gold"]["last_minute"][:10])')"
echo "== hot: 1-hour single-service /metrics on $last, wrk 64 connections"
path="/metrics?service=checkout&from=${last}T12:00:00Z&to=${last}T13:00:00Z"
echo "   $(curl -s -o /dev/null -w '%{http_code}, %{size_download} bytes' "http://$addr$path")"
wrk --threads 2 --connections 64 --duration "$duration" --latency "http://$addr$path" \
  | grep -E 'Requests/sec|^ +(50|75|90|99)%|Non-2xx|Socket errors'

echo "== whole-year rollup of one service, 1d buckets"
for _ in 1 2 3; do
  curl -s -o /dev/null -w '   %{http_code}, %{size_download} bytes, %{time_total} s\n' \
    "http://$addr/metrics/rollup?service=checkout&bucket=1d&limit=10000"
done
echo "== whole-year rollup of one service, 1h buckets (every date decoded)"
curl -s -o /dev/null -w '   %{http_code}, %{size_download} bytes, %{time_total} s\n' \
  "http://$addr/metrics/rollup?service=checkout&bucket=1h&limit=10000"

echo "== memory"
awk '/VmHWM|VmRSS/ {print "   " $1 " " $2 / 1024 " MiB"}' "/proc/$api_pid/status"
curl -s "http://$addr/-/metrics" | grep -E '^minutely_api_(resident_memory_bytes|memory_budget_bytes|cache_bytes|gold_rows)'
