#!/usr/bin/env bash
# Prometheus and promtool (Debian/Ubuntu package `prometheus`) for the monitoring tests:
# `promtool check rules`, the alert rules' unit tests and a real Prometheus scraping a
# real server. Idempotent: does nothing where both are already on PATH. Needs root (apt).
# The package's own service, if the init system starts one, is stopped: the tests run
# their own Prometheus on a free port.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi
echo "setup-prometheus: $(prometheus --version 2>&1 | head -n 1)"
