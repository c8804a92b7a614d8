"""DVC's experiment queue, as the sweep uses it: queue a -S grid, start workers, poll, read results.

Queueing, starting and logs go through the `dvc` CLI (what a user would type);
polling reads the queue in-process (`dvc queue status` without a new
interpreter every few seconds). DVC's workers inherit the environment of
`dvc queue start`, and every experiment they run inherits theirs plus
DVC_EXP_NAME/DVC_ROOT: that is how the sweep's settings reach the stages.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from proc.git import head as git_head
from stages.lib.cli import PipelineError

DVC_TIMEOUT_S = 600  # one dvc command; queueing a grid on 2 busy cores takes a minute or two
QUEUED_LINE = re.compile(r"Queued experiment '([^']+)' for future execution")
DONE = ("Success", "Failed")


def dvc(root: Path, *args: str, env: Mapping[str, str] | None = None, check: bool = True) -> str:
    """Run `dvc ARGS` in root; its stdout, or one line naming the command and DVC's own error.

    Output goes to files, not pipes: `dvc queue start` leaves workers behind that would hold
    a pipe open, and reading it to the end would wait for the whole queue."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "dvc", *args],
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                timeout=DVC_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise PipelineError(f"`dvc {' '.join(args)}` did not finish in {DVC_TIMEOUT_S} s") from None
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if check and done.returncode:
        errors = [line for line in stderr.splitlines() if line.startswith("ERROR")] or stderr.splitlines()
        raise PipelineError(f"`dvc {' '.join(args)}` failed: {(errors or ['no output'])[-1].strip()}")
    return stdout


def queue_grid(root: Path, name: str, overrides: list[str], env: Mapping[str, str]) -> list[str]:
    """`dvc exp run --queue -n NAME -S ...`: DVC expands the grid into NAME-1..NAME-k; their names."""
    args = ["exp", "run", "--queue", "-n", name]
    for item in overrides:
        args += ["-S", item]
    names = QUEUED_LINE.findall(dvc(root, *args, env=env))
    if not names:
        raise PipelineError(f"`dvc {' '.join(args)}` queued no experiment")
    return names


def head(root: Path) -> str:
    """The commit queued experiments start from (DVC needs one: `git commit` the pipeline first)."""
    commit = git_head(root)
    if commit is None:
        raise PipelineError(f"{root} has no git commit to run experiments from: commit the pipeline first")
    return commit


def start(root: Path, jobs: int, env: Mapping[str, str]) -> None:
    dvc(root, "queue", "start", "-j", str(jobs), env=env)


def stop(root: Path) -> None:
    """Let the workers go (they would leave by themselves after 10 s idle)."""
    dvc(root, "queue", "stop", check=False)


def status(root: Path) -> dict[str, str]:
    """{experiment name: Queued | Running | Success | Failed} for every task DVC's queue knows."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        rows = repo.experiments.celery_queue.status()
    return {row["name"] or row["rev"][:7]: row["status"] for row in rows}


def busy(root: Path) -> list[str]:
    """Experiments queued or running now (another sweep, or a user's own `dvc exp run --queue`)."""
    return sorted(name for name, state in status(root).items() if state not in DONE)


def logs(root: Path, name: str) -> str:
    return dvc(root, "queue", "logs", name, check=False)


def current_stage(root: Path, name: str) -> str | None:
    """The stage a running experiment is in, from the last `Running stage '...'` of its queue log."""
    log = logs(root, name)
    found = re.findall(r"Running stage '([^']+)'", log)
    return found[-1] if found else None


def show(root: Path, *select: str) -> dict[str, dict[str, Any]]:
    """`dvc exp show --json SELECT` as {experiment name: {"params": flat params, "metrics": flat metrics}}.

    SELECT picks baselines (`--rev REV`, `--all-commits`); by default DVC shows HEAD's experiments only."""
    from stages.lib.params import flatten

    rows: dict[str, dict[str, Any]] = {}
    for baseline in json.loads(dvc(root, "exp", "show", "--json", *select) or "[]"):
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
                metrics = ((data.get("metrics") or {}).get("reports/metrics.json") or {}).get("data") or {}
                rows[rev.get("name") or exp.get("name")] = {"params": flatten(params), "metrics": flatten(metrics)}
    return rows
