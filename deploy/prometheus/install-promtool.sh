#!/bin/sh
# promtool for checking deploy/prometheus/alerts.yml (tests/integration/test_monitoring_config.py
# runs `promtool check rules` and `promtool test rules` when it is on PATH).
# Debian and Ubuntu ship it in the `prometheus` package; elsewhere, install Prometheus'
# release for your platform and put promtool on PATH.
set -eu
if command -v promtool >/dev/null 2>&1; then
    promtool --version 2>&1 | head -n 1
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-promtool: no apt-get here; install Prometheus' promtool for this platform" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
# the server is installed too but not started (the package's service is not needed)
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus
promtool --version 2>&1 | head -n 1
