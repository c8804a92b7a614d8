"""Running external commands (git, dvc) the project's way: output kept (stdout and stderr
merged), bounded by a timeout, never raising for a failed command, and a failure turned into
one line (`last_error`) with secrets scrubbed (proc.secrets). Used by the operations (ops/),
the sweep driver and the automation. Stdlib only at import: Airflow's venv imports it.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from proc.secrets import redact
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
