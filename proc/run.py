"""Running external commands (git, dvc) the project's way: output kept (stdout and stderr
merged), bounded by a timeout, never raising for a failed command, and a failure turned into
one line (`last_error`) with secrets scrubbed (proc.secrets). Used by the operations (ops/),
the sweep driver and the automation. Stdlib only at import: Airflow's venv imports it.
"""

from __future__ import annotations

import os
import re
import signal
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


def stop_group(proc: subprocess.Popen, grace_s: float) -> str:
    """SIGTERM proc's whole process group, SIGKILL after grace_s; the output it had left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:  # the group is gone already
            pass
        try:
            return proc.communicate(timeout=grace_s)[0] or ""
        except subprocess.TimeoutExpired:
            continue
    return proc.communicate()[0] or ""


def run_group(cmd: Sequence[str], cwd, env: Mapping[str, str], timeout_s: float) -> tuple[int, str]:
    """(exit status, output) of cmd run in its own process group (stdout and stderr merged). The whole
    group is stopped on timeout (exit 124) and when the caller is interrupted (a SIGTERM turned into an
    exception by Prefect, a Ctrl-C): a stopped run never leaves its step running behind it."""
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        out = stop_group(proc, grace_s=30)
        return 124, f"{out}\nerror: step timed out after {timeout_s:g} s (AUTOMATION_TIMEOUT_*)"
    except BaseException:
        stop_group(proc, grace_s=10)
        raise
    return proc.returncode, out
