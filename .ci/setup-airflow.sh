#!/usr/bin/env bash
# Airflow 3 in its own venv (.venv-airflow, git-ignored), for flows/airflow_dag.py and
# `airflow dags test` in the tests and `make automation-smoke`. Separate because
# Airflow pins much of what the main venv pins differently (SQLAlchemy, FastAPI,
# Starlette, pydantic, opentelemetry, ...): sharing would drag MLflow/Prefect/serve
# off their tested versions. The DAG runs shell commands (make targets,
# `python -m ...`) in the main venv; Airflow itself imports only flows.steps (stdlib
# only), so the project is installed here editable and without its dependencies.
# Idempotent: a stamp names what was installed. See README "Automation" for the time.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${AIRFLOW_VENV:-.venv-airflow}
SPEC=("apache-airflow==3.3.2" "apache-airflow-providers-standard==1.21.0")
STAMP="$VENV/.installed-$(printf '%s\n' "${SPEC[@]}" | sha256sum | cut -c1-12)"

# The project (no dependencies), so the DAG imports flows.steps from this checkout.
install_project() { "$VENV/bin/python" -m pip install -q --no-deps -e .; }
if [ -f "$STAMP" ] && "$VENV/bin/airflow" version >/dev/null 2>&1; then
    "$VENV/bin/python" -c 'import flows.steps' 2>/dev/null || install_project
    exit 0
fi
start=$(date +%s)
test -x "$VENV/bin/python" || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q "${SPEC[@]}"
install_project
rm -f "$VENV"/.installed-*
touch "$STAMP"
echo "setup-airflow: Airflow $(AIRFLOW_HOME=$(mktemp -d) "$VENV/bin/airflow" version) in $VENV ($(( $(date +%s) - start )) s)"
