"""The one way the project runs git (operations, automation, sweeps, smoke sandboxes).

Never prompts (GIT_TERMINAL_PROMPT=0 where env is given through ops.common.child_env),
bounded by a timeout, and a failure is one line: `git SUBCOMMAND` and git's last error.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from proc.run import Done, Fail, last_error, run

TIMEOUT_S = 120.0


def git(*args: str, cwd: Path | str | None = None, env: Mapping[str, str] | None = None, check: bool = True) -> str:
    """git's stdout; with check, a non-zero exit (or git missing, or TIMEOUT_S passing) is a Fail."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        if check:
            raise Fail(f"`git {' '.join(args[:2])}` failed: {exc}") from None
        return ""
    if check and done.returncode:
        raise Fail(f"`git {' '.join(args[:2])}` failed: {last_error(done.stderr or done.stdout)}")
    return done.stdout if done.returncode == 0 else ""


def succeeds(*args: str, cwd: Path | str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """True when `git ARGS` exits 0 (cat-file -e, ls-files --error-unmatch, diff --quiet ...)."""
    return run_git(*args, cwd=cwd, env=env).returncode == 0


def run_git(
    *args: str, cwd: Path | str | None = None, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT_S
) -> Done:
    """`git ARGS` with stdout and stderr merged, never raising: for ops.retry.retrying and messages."""
    return run(["git", *args], env, timeout=timeout, cwd=cwd)


def head(cwd: Path | str | None = None) -> str | None:
    """The checked-out commit, or None outside a repository or before the first commit."""
    return git("rev-parse", "HEAD", cwd=cwd, check=False).strip() or None
