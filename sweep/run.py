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
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from runner import gpu_lease
from stages.lib import fsio, sweepmode
from stages.lib.cli import PipelineError
from sweep import dvcq, guard, lost, mlruns, report
from sweep.grid import check as check_grid
from sweep.state import Sweep

RECORD = Path("reports/sweep.json")  # the last sweep: id, parent run, experiments (read by sweep-report)
LOG_DIR = Path("reports/sweep_logs")
POLL_S = 5.0
RESTART_AFTER_S = 30.0  # a worker takes a few seconds to pick up the next experiment; longer means it is gone
DEFAULT_TIMEOUT_S = 7 * 24 * 3600.0  # bounds the wait for the queue; PIPELINE_SWEEP_TIMEOUT_S overrides


def default_jobs(environ: Mapping[str, str]) -> int:
    """Workers: one per PIPELINE_GPUS_PER_RUN GPUs of the visible pool; 1 without GPUs. On the k8s
    executor, 0: one per experiment (set once they are queued), as each stage Job asks the cluster
    for its own GPU and the scheduler, not a local lease, decides what runs when."""
    if environ.get("PIPELINE_EXECUTOR") == "k8s":
        return 0
    pool = gpu_lease.pool(environ)
    per_run = environ.get("PIPELINE_GPUS_PER_RUN") or "1"
    return max(1, len(pool) // int(per_run)) if per_run.isdigit() and int(per_run) > 0 else 1


def new_id(now: datetime | None = None) -> str:
    """sweep-YYYYmmdd-HHMMSS-xxxx: the random part keeps two sweeps started in one second apart."""
    now = now or datetime.now(timezone.utc)
    return f"sweep-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


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
    deadline, last, short_since, watch = time.monotonic() + timeout_s, "", None, lost.Watch()
    while True:
        known = dvcq.status(sw.root)
        sw.states = {n: known.get(n, "Unknown") for n in sw.names}
        if all(s in dvcq.DONE for s in sw.states.values()):
            break
        gone = watch.lost(sw.root, [n for n, s in sw.states.items() if s == "Running"], time.monotonic())
        if gone:
            drop_lost(sw, gone, env, say)
            sw.states.update(dict.fromkeys(gone, "Failed"))
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


def drop_lost(sw: Sweep, names: list[str], env: Mapping[str, str], say: Callable[[str], None]) -> None:
    """Experiments whose queue worker died: failed, with the reason; the missing workers restarted."""
    lost.drop(sw.root, names)
    for name in names:
        sw.reasons[name] = "its queue worker died (killed? out of memory?): experiment dropped"
        say(f"sweep: experiment {name} FAILED: {sw.reasons[name]}")
    if any(s == "Queued" for s in sw.states.values()):
        dvcq.start(sw.root, sw.jobs, env)


def save_logs(sw: Sweep) -> dict[str, Path]:
    """The queue log of each failed experiment, under reports/sweep_logs/."""
    saved = {}
    for name in sorted(n for n, s in sw.states.items() if s != "Success"):
        path = sw.root / LOG_DIR / f"{name}.log"
        log = dvcq.logs(sw.root, name)
        fsio.write_bytes(path, log.encode())
        sw.reasons.setdefault(name, report.reason(log))
        saved[name] = path
    return saved


def finish(sw: Sweep, failed: Mapping[str, Path], say: Callable[[str], None]) -> Path:
    from mlflow import MlflowClient

    fsio.write_json(sw.root / RECORD, sw.record())
    md = report.write(sw.root, sw.record())
    MlflowClient(sw.tracking_uri).set_terminated(sw.parent_run, "FAILED" if failed else "FINISHED")
    ok = sum(1 for s in sw.states.values() if s == "Success")
    say(f"sweep {sw.sweep_id}: {ok} of {len(sw.names)} experiments succeeded; report {md.relative_to(sw.root)}")
    for name, log in failed.items():
        why = sw.reasons.get(name, "")
        say(f"sweep: experiment {name} FAILED: {why}; log {log.relative_to(sw.root)} (also `dvc queue logs {name}`)")
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
    """Run the sweep to the end; (the sweep, {failed experiment: its saved log}).

    Ctrl-C stops this sweep's experiments, ends its parent run as KILLED and re-raises."""
    environ = dict(os.environ if environ is None else environ)
    for key in ("PIPELINE_SWEEP_ID", "PIPELINE_SWEEP_PARENT_RUN", "PIPELINE_SWEEP_KEYS", "DVC_EXP_NAME"):
        environ.pop(key, None)  # a sweep is never nested in another
    sw = Sweep(root.resolve(), new_id(), list(grid), list(fixed), jobs or default_jobs(environ))
    check_grid(sw.root, sw.grid, sw.fixed)  # a bad point stops the sweep before anything is queued
    lock = guard.hold(sw.root, sw.sweep_id)  # held to the end: checking the queue and queueing are one step
    try:
        return _locked(sw, environ, say, poll_s)
    except KeyboardInterrupt:
        guard.interrupted(sw)
        raise
    except Exception:
        guard.end_parent({"parent_run": sw.parent_run, "tracking_uri": sw.tracking_uri}, "FAILED")  # none left open
        raise
    finally:
        os.close(lock)


def _locked(
    sw: Sweep, environ: Mapping[str, str], say: Callable[[str], None], poll_s: float
) -> tuple[Sweep, dict[str, Path]]:
    guard.clear_leftovers(sw.root, RECORD, say)
    others = dvcq.busy(sw.root)
    if others:
        raise PipelineError(
            f"DVC's queue already holds {len(others)} unfinished experiment(s) ({', '.join(others[:5])}): "
            "wait for them (`dvc queue status`) or drop them (`dvc queue kill NAME`, `dvc queue remove --queued`)"
        )
    guard.retire_workers(sw.root)
    sw.baseline = dvcq.head(sw.root)
    mlruns.open_parent(sw, environ)
    env = worker_env(sw, environ)
    say(f"sweep {sw.sweep_id}: queueing {' '.join(sw.fixed + sw.grid)} (MLflow parent run {sw.parent_run})")
    sw.names = dvcq.queue_grid(sw.root, sw.sweep_id, sw.fixed + sw.grid, env)
    sw.states = dict.fromkeys(sw.names, "Queued")
    sw.jobs = sw.jobs or len(sw.names)  # k8s: every experiment at once, its Jobs queued by the scheduler
    fsio.write_json(sw.root / RECORD, sw.record())
    say(f"sweep {sw.sweep_id}: {len(sw.names)} experiments, {sw.jobs} at a time (dvc queue start -j {sw.jobs})")
    dvcq.start(sw.root, sw.jobs, env)
    timeout = float(environ.get("PIPELINE_SWEEP_TIMEOUT_S") or DEFAULT_TIMEOUT_S)
    wait(sw, env, say, poll_s, timeout)
    report.check_results(sw)
    failed = save_logs(sw)
    finish(sw, failed, say)
    return sw, failed
