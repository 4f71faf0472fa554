#!/usr/bin/env bash
# Reload soak (see scripts/reload_soak.py): installs wrk if missing, builds,
# runs the soak. Usage: scripts/reload-soak.sh [RUNS]   (default 24)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_debian wrk wrk
cargo build -q -p pipeline -p api
python3 scripts/reload_soak.py "$@"
