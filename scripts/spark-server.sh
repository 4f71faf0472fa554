#!/usr/bin/env bash
# Starts a Spark Connect server for tests; see scripts/spark_server.py.
# Installs it into a virtualenv on first use (PyPI), under a lock so
# parallel tests install it once:
#   sail:  pysail 0.7.2 with pyspark[connect] 4.2.0 (Sail refuses 4.3 clients)
#   spark: pyspark[connect] 4.3.0, which ships the Spark Connect server
#          (Java 17 from the base image)
# Usage: scripts/spark-server.sh sail|spark
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kind="${1:-sail}"
case "$kind" in
  sail) packages=(pysail==0.7.2 "pyspark[connect]==4.2.0"); check="import pysail, pyspark" ;;
  spark) packages=("pyspark[connect]==4.3.0"); check="import pyspark" ;;
  *) echo "usage: $0 sail|spark" >&2; exit 2 ;;
esac
venv="${CARGO_TARGET_DIR:-$root/target}/$kind-venv"
source "$root/scripts/lib.sh"
install_venv "$venv" "$check" "${packages[@]}"
exec "$venv/bin/python" "$root/scripts/spark_server.py" "$kind"
