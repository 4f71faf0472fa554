#!/usr/bin/env bash
# Builds `pipeline` and runs scripts/schedule_bench.py (a scheduled
# pipeline over time) with pyarrow from PyPI (scripts/tables-requirements.txt,
# the virtualenv the Delta reader checks use). Arguments go to the script:
#   scripts/schedule-bench.sh --runs 2000 --max-ratio 1.2
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/lib.sh
target="${CARGO_TARGET_DIR:-target}"
install_venv "$target/delta-venv" "import deltalake, polars, pyarrow" -r scripts/tables-requirements.txt
cargo build --quiet -p pipeline
PIPELINE="${PIPELINE:-$target/debug/pipeline}" exec "$target/delta-venv/bin/python" scripts/schedule_bench.py "$@"
