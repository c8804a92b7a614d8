#!/usr/bin/env bash
# Airflow 3 in its own venv (.venv-airflow, git-ignored), for flows/airflow_dag.py and
# `airflow dags test` in the tests and `make automation-smoke`. Separate because
# Airflow pins much of what the main venv pins differently (SQLAlchemy, FastAPI,
# Starlette, pydantic, opentelemetry, ...): sharing would drag MLflow/Prefect/serve
# off their tested versions. The DAG only runs shell commands (make targets,
# `python -m ...`) in the main venv, so Airflow never imports the project.
# Idempotent: a stamp names what was installed. See README "Automation" for the time.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${AIRFLOW_VENV:-.venv-airflow}
SPEC=("apache-airflow==3.3.2" "apache-airflow-providers-standard==1.21.0")
STAMP="$VENV/.installed-$(printf '%s\n' "${SPEC[@]}" | sha256sum | cut -c1-12)"

if [ -f "$STAMP" ] && "$VENV/bin/airflow" version >/dev/null 2>&1; then
    exit 0
fi
start=$(date +%s)
test -x "$VENV/bin/python" || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q "${SPEC[@]}"
rm -f "$VENV"/.installed-*
touch "$STAMP"
echo "setup-airflow: Airflow $(AIRFLOW_HOME=$(mktemp -d) "$VENV/bin/airflow" version) in $VENV ($(( $(date +%s) - start )) s)"
