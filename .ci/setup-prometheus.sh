#!/usr/bin/env bash
# Prometheus and promtool (Debian/Ubuntu package `prometheus`) and Alertmanager with amtool
# (`prometheus-alertmanager`) for the monitoring tests: `promtool check rules`, the alert rules'
# unit tests, `amtool check-config`, a real Prometheus scraping a real server, and the guardrail
# test's real Alertmanager. Idempotent: does nothing where all four are already on PATH. Needs root (apt).
# The package's own service, if the init system starts one, is stopped: the tests run
# their own Prometheus and Alertmanager on free ports.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
if have prometheus && have promtool && have prometheus-alertmanager && have amtool; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now prometheus prometheus-node-exporter prometheus-alertmanager >/dev/null 2>&1 || true
fi
echo "setup-prometheus: $(prometheus --version 2>&1 | head -n 1); $(prometheus-alertmanager --version 2>&1 | head -n 1)"
