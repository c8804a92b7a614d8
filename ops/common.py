"""Shared by the operations (remote, git_sync, dagshub_setup, and flows' settings):
settings from the environment or `.env`, running dvc/git with their output kept, and
turning failures into one line that names the fix (secrets scrubbed by proc.secrets).

Stdlib only at import (the Airflow venv imports flows.steps -> ops.retry -> here).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from proc.run import Fail
from proc.secrets import redact

ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*:?=\s*(.*?)\s*$")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as `make -include .env` reads them: no quoting, `#` starts a comment."""
    found: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            m = ENV_LINE.match(line.split("#", 1)[0])
            if m:
                found[m.group(1)] = m.group(2)
    return found


def settings(root: Path = Path("."), environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment over `.env`; names with empty values count as unset. With DAGSHUB_OWNER
    and no MLFLOW_TRACKING_URI, MLflow goes to the DagsHub repo's server, the token as password."""
    given = os.environ if environ is None else environ
    merged = {**read_env_file(root / ".env"), **{k: v for k, v in given.items() if v != ""}}
    found = {k: v for k, v in merged.items() if v != ""}
    if "DAGSHUB_OWNER" in found and "MLFLOW_TRACKING_URI" not in found:  # as the Makefile derives them
        repo = f"{found['DAGSHUB_OWNER']}/{found.get('DAGSHUB_REPO', '')}"
        found["MLFLOW_TRACKING_URI"] = f"https://dagshub.com/{repo}.mlflow"
        found["MLFLOW_TRACKING_USERNAME"] = found.get("DAGSHUB_USER", found["DAGSHUB_OWNER"])
        found["MLFLOW_TRACKING_PASSWORD"] = found.get("DAGSHUB_TOKEN", "")
    return found


def dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for dvc/git: settings (incl. .env) over os.environ, never prompting."""
    return {**os.environ, **env, "GIT_TERMINAL_PROMPT": "0"}


def main(what: str, body: Callable[[list[str]], None], argv: list[str] | None = None) -> int:
    """Run an operation's body; a Fail prints one line (secrets scrubbed) and exits 1."""
    try:
        body(sys.argv[1:] if argv is None else argv)
    except Fail as exc:
        print(f"{what}: error: {redact(str(exc), settings())}", file=sys.stderr)
        return 1
    return 0
