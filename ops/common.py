"""Shared by the operations (remote, git_sync, dagshub_setup, flows): the dvc command line, the
environment for dvc/git, and turning failures into one line that names the fix (secrets scrubbed
by proc.secrets). Their settings: ops.settings.

Stdlib only at import (the Airflow venv imports flows.steps -> ops.retry -> here).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from proc.run import Fail
from proc.secrets import redact_all

__all__ = ["Fail", "child_env", "dvc", "main"]


def dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for dvc/git: settings (ops.settings, incl. .env) over os.environ, never prompting."""
    return {**os.environ, **env, "GIT_TERMINAL_PROMPT": "0"}


def main(what: str, body: Callable[[list[str]], None], argv: list[str] | None = None) -> int:
    """Run an operation's body; a Fail prints one line (secrets scrubbed) and exits 1."""
    try:
        body(sys.argv[1:] if argv is None else argv)
    except Fail as exc:
        message = redact_all(str(exc), Path(".env"))
        print(f"{what}: error: {message}", file=sys.stderr)
        return 1
    return 0
