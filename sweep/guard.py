"""One sweep at a time per project, and what a dead or interrupted sweep leaves behind.

A live driver holds the project's sweep lock (.dvc/tmp/sweep.lock, a flock the
kernel drops when the driver dies) from its checks to its report, so the check
that the queue is free and the queueing are atomic, and a second `make sweep`
is refused in one line. With the lock held, any `sweep-*` experiment still
queued or running belongs to a sweep whose driver is gone: the next sweep
drops it (and ends that sweep's MLflow parent run) before queueing its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from stages.lib import fsio, locks, sweepalive
from stages.lib.cli import PipelineError
from sweep import dvcq, lost
from sweep.state import Sweep

WORKER_EXIT_S = 60.0  # an idle worker leaves within seconds of `dvc queue stop`
PREFIX = "sweep-"  # sweep ids (sweep/run.py new_id): DVC names their experiments SWEEP_ID-1..k


def hold(root: Path, sweep_id: str) -> int:
    """The project's sweep lock, held until the fd is closed; one line naming the holder when taken."""
    path = sweepalive.lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = locks.try_lock(path, f"pid {os.getpid()} sweep {sweep_id}")
    if fd is None:
        raise PipelineError(
            f"another sweep runs in {root} ({locks.holder(path)}): wait for it to end, or stop it with Ctrl-C"
        )
    return fd


def end_parent(record: dict, status: str) -> None:
    """End a sweep's MLflow parent run as `status` if it is still RUNNING."""
    from mlflow import MlflowClient

    if not record.get("parent_run") or not record.get("tracking_uri"):
        return
    client = MlflowClient(record["tracking_uri"])
    with contextlib.suppress(Exception):  # a parent run deleted since: nothing to end
        if client.get_run(record["parent_run"]).info.status == "RUNNING":
            client.set_terminated(record["parent_run"], status)


def drop_all(root: Path, states: dict[str, str]) -> tuple[list[str], list[str]]:
    """Kill the running and remove the queued of these experiments; (running, queued) names."""
    running = sorted(n for n, s in states.items() if s == "Running")
    queued = sorted(n for n, s in states.items() if s == "Queued")
    if queued:
        dvcq.dvc(root, "queue", "remove", *queued, check=False)
    if running:
        lost.drop(root, running, "its sweep stopped")
    return running, queued


def clear_leftovers(root: Path, record_path: Path, say: Callable[[str], None]) -> None:
    """With the lock held: drop what sweeps whose driver died left in the queue; end their parent run."""
    left = {n: s for n, s in dvcq.status(root).items() if n.startswith(PREFIX) and s not in dvcq.DONE}
    record = fsio.read_json(root / record_path) if (root / record_path).is_file() else {}
    end_parent(record, "KILLED")  # the last sweep ended it already unless its driver died
    if not left:
        return
    running, queued = drop_all(root, left)
    say(
        f"sweep: cleared what a dead sweep left: {len(running)} running experiment(s) killed, "
        f"{len(queued)} queued removed ({', '.join(sorted(left)[:5])})"
    )


def retire_workers(root: Path) -> None:
    """With the queue empty: let go any worker left by an earlier sweep. A worker keeps the environment
    of the `dvc queue start` that made it (the old sweep's id and parent run): the new sweep's
    experiments must get workers of their own."""
    pids = lost.workers(root)
    if not pids:
        return
    dvcq.stop(root)
    deadline = time.monotonic() + WORKER_EXIT_S
    while any(lost.alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in pids:
        if lost.alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)  # idle: the queue holds nothing unfinished


def interrupted(sw: Sweep) -> None:
    """Ctrl-C: this sweep's experiments stopped, its workers let go, its parent run KILLED."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
    try:
        if sw.names:
            known = dvcq.status(sw.root)
            drop_all(sw.root, {n: known.get(n, "") for n in sw.names})
            dvcq.stop(sw.root)
        end_parent({"parent_run": sw.parent_run, "tracking_uri": sw.tracking_uri}, "KILLED")
    finally:
        signal.signal(signal.SIGINT, old)
