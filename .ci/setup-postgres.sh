#!/usr/bin/env bash
# PostgreSQL server binaries (Debian/Ubuntu package `postgresql`) for the feedback store and team-MLflow tests:
# tests/support/postgres.py runs initdb + pg_ctl into a tmp folder on a free port. Debian puts
# them in /usr/lib/postgresql/<major>/bin, off PATH; the fixture looks there. Idempotent: does
# nothing where initdb is found. Needs root (apt). The package's own cluster service is stopped.
set -euo pipefail

if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
fi
echo "setup-postgres: $(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"
