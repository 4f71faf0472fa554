#!/usr/bin/env bash
# Fuzz smoke: builds the cargo-fuzz targets in fuzz/ (nightly toolchain,
# the `records` crate only, no polars) and runs each for SECONDS (default
# 30). A crash fails the run and leaves its input in fuzz/artifacts/.
# Longer campaigns: cargo +nightly fuzz run -O TARGET -- -runs=10000000
# Usage: scripts/fuzz-smoke.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version 2>/dev/null | grep -q ' 0\.13\.2'; then
  cargo install --quiet --locked cargo-fuzz --version 0.13.2
fi
cargo +nightly fuzz build -O
for target in csv_reader ndjson_reader timestamp numbers; do
  log="$(mktemp)"
  if ! cargo +nightly fuzz run -O "$target" -- -max_total_time="$seconds" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $target failed; its input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  echo "$target: $(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1)"
  rm -f "$log"
done
