#!/usr/bin/env bash
# Crash soak (see scripts/crash_soak.py): builds, sets up the reader venv
# (duckdb, for comparing layers) and runs the soak on a local folder and on
# moto S3. Usage: scripts/crash-soak.sh [KILLS] [local|s3 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
venv="$target/ci-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/readers-requirements.txt
cargo build -q -p pipeline
"$venv/bin/python" scripts/crash_soak.py "$@"
