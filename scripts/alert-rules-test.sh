#!/usr/bin/env bash
# Checks the example Prometheus alert rules (config/prometheus/alerts.yml):
# `promtool check rules`, then `promtool test rules` on alerts-test.yml,
# which fires each alert on the series that should fire it and none on a
# healthy pipeline. promtool comes from Debian's `prometheus` package,
# unpacked under target/ without installing it (installing would start a
# Prometheus server).
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${CARGO_TARGET_DIR:-target}/promtool"
promtool="$tools/usr/bin/promtool"
if [ ! -x "$promtool" ]; then
  mkdir -p "$tools"
  (cd "$tools" && (apt-get download -q prometheus || (apt-get update -q && apt-get download -q prometheus))) >/dev/null
  dpkg-deb -x "$tools"/prometheus_*.deb "$tools"
fi
"$promtool" --version | head -1
"$promtool" check rules config/prometheus/alerts.yml
"$promtool" test rules config/prometheus/alerts-test.yml
