#!/usr/bin/env bash
# Starts a local S3 server (moto) for tests; see scripts/s3_server.py.
# Installs moto into a virtualenv on first use (PyPI), under a lock so
# parallel tests install it once. Usage: scripts/s3-server.sh BUCKET...
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${MINUTELY_S3_VENV:-${CARGO_TARGET_DIR:-$root/target}/s3-venv}"
source "$root/scripts/lib.sh"
install_venv "$venv" "import moto.server, boto3" "moto[server]==5.2.1"
exec "$venv/bin/python" "$root/scripts/s3_server.py" "$@"
