"""`make sweep`: a grid of experiments on DVC's queue, run N at a time, compared in one report.

The grid is DVC's own -S sweep syntax (`key=a,b,c`, `choice()`, `range()`),
queued with `dvc exp run --queue -n SWEEP_ID` (DVC names the points
SWEEP_ID-1..k) and run by `dvc queue start -j N`. Before queueing, the driver
opens one MLflow parent run for the sweep in the project's store and puts the
sweep's settings in the environment the queue workers inherit
(PIPELINE_SWEEP_*, MLFLOW_TRACKING_URI), so each experiment's train run nests
under the parent and its register never moves `champion` (stages/lib/sweepmode.py).
It prints progress while the queue runs, then writes reports/sweep.md and
reports/sweep.png (sweep/report.py), saves each failed experiment's log and
exits non-zero naming them.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from runner import gpu_lease
from stages.lib import fsio, sweepmode
from stages.lib.cli import PipelineError
from sweep import dvcq, mlruns

RECORD = Path("reports/sweep.json")  # the last sweep: id, parent run, experiments (read by sweep-report)
LOG_DIR = Path("reports/sweep_logs")
POLL_S = 5.0
RESTART_AFTER_S = 30.0  # a worker takes a few seconds to pick up the next experiment; longer means it is gone
DEFAULT_TIMEOUT_S = 7 * 24 * 3600.0  # bounds the wait for the queue; PIPELINE_SWEEP_TIMEOUT_S overrides


@dataclass
class Sweep:
    root: Path
    sweep_id: str
    grid: list[str]
    fixed: list[str]
    jobs: int
    tracking_uri: str = ""
    experiment: str = ""
    parent_run: str = ""
    baseline: str = ""  # the commit the experiments start from
    names: list[str] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return grid_keys(self.grid)

    def record(self) -> dict:
        keys = ["sweep_id", "grid", "fixed", "jobs", "tracking_uri", "experiment", "parent_run", "baseline"]
        keys += ["names", "states"]
        return {"keys": self.keys, **{k: getattr(self, k) for k in keys}}


def grid_keys(grid: list[str]) -> list[str]:
    """The params a grid sweeps: `recipes.fast.lr=0.2,0.4` -> recipes.fast.lr (hydra's +/~ prefixes dropped)."""
    keys = []
    for item in grid:
        found = re.fullmatch(r"[+~]{0,2}([\w.\-]+)=(.*)", item.strip())
        if not found:
            raise PipelineError(f"sweep grid item {item!r} is not KEY=VALUES (e.g. recipes.fast.lr=0.2,0.4)")
        keys.append(found.group(1))
    return keys


def default_jobs(environ: Mapping[str, str]) -> int:
    """Workers: one per PIPELINE_GPUS_PER_RUN GPUs of the visible pool; 1 without GPUs."""
    pool = gpu_lease.pool(environ)
    per_run = environ.get("PIPELINE_GPUS_PER_RUN") or "1"
    return max(1, len(pool) // int(per_run)) if per_run.isdigit() and int(per_run) > 0 else 1


def new_id(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"sweep-{now:%Y%m%d-%H%M%S}"


def worker_env(sw: Sweep, environ: Mapping[str, str]) -> dict[str, str]:
    """What `dvc queue start` passes to its workers and so to every stage of every experiment."""
    return {
        **environ,
        sweepmode.SWEEP_ID: sw.sweep_id,
        sweepmode.PARENT_RUN: sw.parent_run,
        sweepmode.KEYS: ",".join(sw.keys),
        "MLFLOW_TRACKING_URI": sw.tracking_uri,
        "PIPELINE_GPUS_PER_RUN": environ.get("PIPELINE_GPUS_PER_RUN") or "1",
        "PYTHONUNBUFFERED": "1",
    }


def progress_line(states: Mapping[str, str], detail: Mapping[str, str]) -> str:
    """One line: counts by state, then each running experiment with its stage or epoch."""
    counts = {s: sum(1 for v in states.values() if v == s) for s in ("Queued", "Running", "Success", "Failed")}
    running = [f"{n} ({detail[n]})" if n in detail else n for n, s in sorted(states.items()) if s == "Running"]
    text = (
        f"{counts['Success']} done, {counts['Failed']} failed, {counts['Running']} running, {counts['Queued']} queued"
    )
    return f"sweep: {text}" + (f": {', '.join(running)}" if running else "")


def wait(sw: Sweep, env: Mapping[str, str], say: Callable[[str], None], poll_s: float, timeout_s: float) -> None:
    """Poll DVC's queue until every experiment of the sweep is done; say what changed.

    A queue worker can die on a race in DVC's filesystem message broker (treeverse/dvc#10398:
    JSONDecodeError in kombu): when experiments wait while fewer than N run for RESTART_AFTER_S,
    `dvc queue start -j N` again (it starts only the missing workers)."""
    deadline, last, short_since = time.monotonic() + timeout_s, "", None
    while True:
        known = dvcq.status(sw.root)
        sw.states = {n: known.get(n, "Unknown") for n in sw.names}
        if all(s in dvcq.DONE for s in sw.states.values()):
            break
        running = sum(s == "Running" for s in sw.states.values())
        short = "Queued" in sw.states.values() and running < sw.jobs
        short_since = (short_since or time.monotonic()) if short else None
        if short_since is not None and time.monotonic() - short_since > RESTART_AFTER_S:
            say(f"sweep: {running} of {sw.jobs} workers busy while experiments wait: restarting the missing workers")
            dvcq.start(sw.root, sw.jobs, env)
            short_since = None
        line = progress_line(sw.states, mlruns.epochs(sw) if running else {})
        if line != last:
            say(line)
            last = line
        if time.monotonic() > deadline:
            raise PipelineError(f"sweep {sw.sweep_id} not done after {timeout_s:.0f} s: see `dvc queue status`")
        time.sleep(poll_s)
    say(progress_line(sw.states, {}))


def save_logs(sw: Sweep) -> dict[str, Path]:
    """The queue log of each failed experiment, under reports/sweep_logs/."""
    saved = {}
    for name in sorted(n for n, s in sw.states.items() if s != "Success"):
        path = sw.root / LOG_DIR / f"{name}.log"
        fsio.write_bytes(path, dvcq.logs(sw.root, name).encode())
        saved[name] = path
    return saved


def finish(sw: Sweep, failed: Mapping[str, Path], say: Callable[[str], None]) -> Path:
    from mlflow import MlflowClient

    from sweep import report

    fsio.write_json(sw.root / RECORD, sw.record())
    md = report.write(sw.root, sw.record())
    MlflowClient(sw.tracking_uri).set_terminated(sw.parent_run, "FAILED" if failed else "FINISHED")
    ok = sum(1 for s in sw.states.values() if s == "Success")
    say(f"sweep {sw.sweep_id}: {ok} of {len(sw.names)} experiments succeeded; report {md.relative_to(sw.root)}")
    for name, log in failed.items():
        say(f"sweep: experiment {name} FAILED: its log is {log.relative_to(sw.root)} (also `dvc queue logs {name}`)")
    return md


def run(
    root: Path,
    grid: list[str],
    fixed: list[str],
    jobs: int | None = None,
    environ: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
    poll_s: float = POLL_S,
) -> tuple[Sweep, dict[str, Path]]:
    """Run the sweep to the end; (the sweep, {failed experiment: its saved log})."""
    environ = dict(os.environ if environ is None else environ)
    for key in ("PIPELINE_SWEEP_ID", "PIPELINE_SWEEP_PARENT_RUN", "PIPELINE_SWEEP_KEYS", "DVC_EXP_NAME"):
        environ.pop(key, None)  # a sweep is never nested in another
    grid_keys(grid)  # a malformed item stops the sweep before anything is queued
    sw = Sweep(root.resolve(), new_id(), list(grid), list(fixed), jobs or default_jobs(environ))
    others = dvcq.busy(sw.root)
    if others:
        raise PipelineError(
            f"DVC's queue already holds {len(others)} unfinished experiment(s) ({', '.join(others[:5])}): "
            "wait for them (`dvc queue status`) or drop them (`dvc queue remove --queued`)"
        )
    sw.baseline = dvcq.head(sw.root)
    mlruns.open_parent(sw, environ)
    env = worker_env(sw, environ)
    say(f"sweep {sw.sweep_id}: queueing {' '.join(sw.fixed + sw.grid)} (MLflow parent run {sw.parent_run})")
    sw.names = dvcq.queue_grid(sw.root, sw.sweep_id, sw.fixed + sw.grid, env)
    sw.states = dict.fromkeys(sw.names, "Queued")
    fsio.write_json(sw.root / RECORD, sw.record())
    say(f"sweep {sw.sweep_id}: {len(sw.names)} experiments, {sw.jobs} at a time (dvc queue start -j {sw.jobs})")
    dvcq.start(sw.root, sw.jobs, env)
    timeout = float(environ.get("PIPELINE_SWEEP_TIMEOUT_S") or DEFAULT_TIMEOUT_S)
    wait(sw, env, say, poll_s, timeout)
    failed = save_logs(sw)
    finish(sw, failed, say)
    return sw, failed
