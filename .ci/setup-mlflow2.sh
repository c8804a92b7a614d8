#!/usr/bin/env bash
# An MLflow 2.x server in its own venv (.venv-mlflow2, git-ignored), for the tests
# that play DagsHub's hosted MLflow, reported to run 2.x. 2.22.2 is the last 2.x
# release; it needs sqlalchemy<2.1 (2.1 dropped FallbackAsyncAdaptedQueuePool,
# which it imports). Idempotent: a stamp names what was installed. About 2 min
# and 850 MB the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${MLFLOW2_VENV:-.venv-mlflow2}
SPEC=("mlflow[auth]==2.22.2" "sqlalchemy<2.1")
STAMP="$VENV/.installed-$(printf '%s\n' "${SPEC[@]}" | sha256sum | cut -c1-12)"

if [ -f "$STAMP" ] && "$VENV/bin/mlflow" --version >/dev/null 2>&1; then
    exit 0
fi
test -x "$VENV/bin/python" || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q "${SPEC[@]}"
rm -f "$VENV"/.installed-*
touch "$STAMP"
echo "setup-mlflow2: $("$VENV/bin/mlflow" --version) in $VENV"
