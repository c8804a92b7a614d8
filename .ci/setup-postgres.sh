#!/usr/bin/env bash
# PostgreSQL's server binaries (initdb, pg_ctl) for the team-MLflow test (tests/support/pg.py,
# tests/integration/test_team_mlflow.py). Debian/Ubuntu put them in /usr/lib/postgresql/<major>/bin,
# off PATH; the fixture looks there. No server is started here: each test starts its own.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
# The package starts a cluster service on 5432 on some hosts; the tests never use it.
