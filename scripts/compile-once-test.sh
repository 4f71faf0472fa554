#!/usr/bin/env bash
# Checks that the README's two commands compile each crate once: builds
# what `cargo run -p pipeline` builds, then what `cargo test --workspace`
# builds, and fails when the second compiles a crates.io crate that the
# first already compiled (a feature or profile difference between the two
# commands, which makes cargo build that crate, and everything above it,
# again). Prints each build's wall and CPU seconds.
#
# Needs an empty target directory, as on a fresh clone: CI runs it first.
# Elsewhere: CARGO_TARGET_DIR=$(mktemp -d) scripts/compile-once-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
if [ -d "$target/debug" ]; then
  echo "compile-once-test: $target/debug exists; this check needs an empty target directory" >&2
  exit 2
fi
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

# `build NAME ARGS...`: runs `cargo ARGS...`, keeps its output in
# $logs/NAME.log and prints its wall and CPU seconds.
build() {
  local name="$1"
  shift
  echo "compile-once-test: cargo $* ..."
  TIMEFORMAT="compile-once-test: cargo $*: %0R s wall, %0U s user + %0S s system CPU"
  time cargo "$@" 2>&1 | tee "$logs/$name.log"
  echo "compile-once-test: cargo $*: $(grep -c '^ *Compiling ' "$logs/$name.log") crates compiled"
}

# crates.io crates only: a workspace member's line ends with its path.
registry_crates() {
  sed -n 's/^ *Compiling \([^ ]*\) \(v[^ ]*\)$/\1 \2/p' "$1" | sort -u
}

# --timings: target/cargo-timings/ shows where the first build's time goes.
build run build -p pipeline --timings
build test test --workspace --no-run
twice="$(comm -12 <(registry_crates "$logs/run.log") <(registry_crates "$logs/test.log"))"
if [ -n "$twice" ]; then
  echo "compile-once-test: FAILED: the test command compiled again what the run command compiled:" >&2
  echo "$twice" | sed 's/^/  /' >&2
  echo "Find the feature difference with: cargo tree -e features -i <crate> (see README, Building)." >&2
  exit 1
fi
echo "compile-once-test: ok, the test command compiled no crates.io crate twice"
