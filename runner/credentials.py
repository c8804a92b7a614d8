"""The one list of remote settings and credentials, by name (never their values).

Everything else derives from it or is checked against it (tests/unit/test_credentials.py):
the Makefile's REMOTE_VARS (what `make` reads from `.env` and exports), runner/compose-run.sh's
SECRET_NAMES (what goes to the dvc-runner as a file), .env.example, stage_spec (what a stage
container gets over stdin), ops.settings.RemoteSettings; SECRETS (those whose values proc.secrets
masks in any output) is part of it.
Here, in runner/, because the runner needs it and may not import ops (pyproject's layer contract).
"""

from __future__ import annotations

import re
from pathlib import Path

ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*:?=\s*(.*?)\s*$")

# DVC remote on DagsHub (`make dagshub`), and MLflow there when MLFLOW_TRACKING_URI is unset.
DAGSHUB = ("DAGSHUB_OWNER", "DAGSHUB_REPO", "DAGSHUB_USER", "DAGSHUB_TOKEN")
# Any S3-compatible DVC remote; the AWS_* also reach an MLflow server whose artifacts live on S3.
S3 = (
    "DVC_REMOTE_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "MLFLOW_S3_ENDPOINT_URL",  # MLflow's own S3 endpoint, when it differs from AWS_ENDPOINT_URL
)
MLFLOW = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
RETRY = ("REMOTE_ATTEMPTS", "REMOTE_RETRY_DELAY_S")  # push, pull, git-sync: attempts, first wait in s

# What `make` takes from `.env` (a non-empty shell value wins) and exports to its recipes.
REMOTE_VARS = DAGSHUB + S3 + MLFLOW + RETRY

# The remote settings whose values are secret: masked in whatever is printed, logged or sent (proc.secrets).
SECRETS = (
    "DAGSHUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)

# The credentials a stage talking to MLflow uses (train, evaluate, register): the dvc-runner gets
# them as a file (runner/compose-run.sh), a stage container over its stdin (runner/stage_spec.py).
# Not DAGSHUB_TOKEN: the Makefile has made it MLFLOW_TRACKING_PASSWORD; not the URIs, which are
# settings, passed in the open.
STAGE_SECRETS = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    *(name for name in S3 if name != "DVC_REMOTE_URL"),
)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as `make -include .env` reads them: no quoting, `#` starts a comment.
    Stdlib only: ops.common (imported by the Airflow venv, which has no pydantic) uses it too."""
    found: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            m = ENV_LINE.match(line.split("#", 1)[0])
            if m:
                found[m.group(1)] = m.group(2)
    return found
