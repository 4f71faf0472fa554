#!/usr/bin/env bash
# Independent Delta readers on a run sequence: generates a dataset, delivers
# it to the inbox one file per run (so each table gets several versions, a
# gold partition is replaced, late data lands and partitions are compacted),
# copies the output after
# each run, then reads every layer through python `deltalake` (delta-rs),
# `polars.scan_delta` and Sail's `spark.read.format("delta")`, newest version
# and time travel to each run's version, against the plain Hive read
# (scripts/check_tables.py); and the same deliveries keeping replaced
# files, where every run's version must read back. Installs the readers from PyPI
# (scripts/tables-requirements.txt; Sail through scripts/spark-server.sh).
# Usage: scripts/tables-test.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/lib.sh
target="${CARGO_TARGET_DIR:-target}"
venv="$target/delta-venv"
install_venv "$venv" "import deltalake, polars, pyarrow" -r scripts/tables-requirements.txt

cargo build --quiet -p pipeline
pipeline="$target/debug/pipeline"
work="$(mktemp -d)"
sail_pid=""
cleanup() {
  [ -n "$sail_pid" ] && kill "$sail_pid" 2>/dev/null && wait "$sail_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$pipeline" generate --events 40000 --seed 5 --out "$work/gen" >/dev/null
# One generated file a run; compaction after the fourth small file of a
# partition, so the logs hold compaction versions too; a checkpoint every
# 5 versions, so readers open them from checkpoints.
export MINUTELY_COMPACT_MIN_FILES=4 MINUTELY_CHECKPOINT_INTERVAL=5 MINUTELY_MAX_REJECT_RATIO=1 RUST_LOG=warn
# The same deliveries again into kept/, keeping replaced files for time
# travel (keep_replaced_hours), with a copy after each run as kept-after-K.
k=0
while IFS= read -r file; do
  k=$((k + 1))
  mkdir -p "$work/inbox/$(dirname "$file")"
  cp "$work/gen/$file" "$work/inbox/$file"
  "$pipeline" run --input "$work/inbox" --output "$work/out" >/dev/null
  cp -r "$work/out" "$work/after-$k"
  MINUTELY_KEEP_REPLACED_HOURS=24 "$pipeline" run --input "$work/inbox" --output "$work/kept" >/dev/null
  cp -r "$work/kept" "$work/kept-after-$k"
done < <(cd "$work/gen" && find . -type f | sort)
echo "$k runs; versions per table:"
for layer in bronze/events silver/events silver/rejects gold/service_minute_metrics; do
  echo "  $layer: $(ls "$work/out/$layer/_delta_log" | grep -c '\.json$'), checkpoint $(cat "$work/out/$layer/_delta_log/_last_checkpoint")"
done

"$venv/bin/python" scripts/check_tables.py delta "$work"
"$venv/bin/python" scripts/check_tables.py kept "$work"

mkfifo "$work/sail.in"
scripts/spark-server.sh sail <"$work/sail.in" >"$work/sail.out" 2>/dev/null &
sail_pid=$!
exec 4>"$work/sail.in" # closing it stops the server
for _ in $(seq 600); do grep -q '^ready ' "$work/sail.out" && break; sleep 0.2; done
remote="$(sed -n 's/^ready //p' "$work/sail.out")"
[ -n "$remote" ] || { echo "Sail did not start" >&2; exit 1; }
"$target/sail-venv/bin/python" scripts/check_tables.py sail "$work" "$remote"
exec 4>&-
wait "$sail_pid"
sail_pid=""
