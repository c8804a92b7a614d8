"""Shared by the operations (remote, git_sync, dagshub_setup, flows): running dvc/git with
their output kept, and turning failures into one line that names the fix (secrets scrubbed
by ops.secrets). Their settings: ops.settings.

Stdlib only at import (the Airflow venv imports flows.steps -> ops.retry -> here).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ops.secrets import redact
from runner.credentials import read_env_file
from stages.lib.cli import PipelineError


class Fail(PipelineError):
    """An expected failure: printed as `what: error: message`, exit status 1. A PipelineError,
    so the stage-style entry points (ops.reproduce) show it as one line too."""


def last_error(output: str) -> str:
    """The most telling line of a failed command's output, for the one-line message."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip() and not ln.startswith("Having any troubles")]
    errors = [ln for ln in lines if ln.lower().startswith(("error", "fatal"))]
    line = (errors or lines or ["no output"])[-1]
    line = re.sub(r"^(error|fatal):\s*(unexpected error\s*-\s*)?", "", line, flags=re.I)
    return re.sub(r'"(\w+://[^/"]+)/[^"]*"', r'"\1"', line)[:300]  # a URL's host says enough


@dataclass
class Done:
    returncode: int
    output: str


def run(
    cmd: Sequence[str], env: Mapping[str, str] | None = None, echo: bool = False, timeout: float = 3600, cwd=None
) -> Done:
    """Run cmd with stdout and stderr merged (env None: os.environ); with echo, print its output
    (secrets scrubbed) minus dvc's error lines and footer, which the caller's one-line message replaces."""
    try:
        done = subprocess.run(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=None if env is None else dict(env),
            timeout=timeout,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        return Done(124, f"timed out after {timeout:g} s")
    except OSError as exc:  # git or dvc missing, cwd gone
        return Done(127, str(exc))
    if echo:
        for line in done.stdout.splitlines():
            if line.strip() and not line.startswith(("ERROR:", "Having any troubles")):
                print(redact(line, env or {}))
    return Done(done.returncode, done.stdout)


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
        # Masks the secrets of both the environment and .env, whichever the operation used.
        message = redact(redact(str(exc), os.environ), read_env_file(Path(".env")))
        print(f"{what}: error: {message}", file=sys.stderr)
        return 1
    return 0
