"""Experiments DVC's queue lost: their queue worker died (OOM killer, SIGKILL) mid-run.

DVC's queue keeps such an experiment `Running` for ever: only its worker would
collect it and mark it done. Its `dvc exp exec-run` process lives on as an
orphan and would still register a model for an experiment DVC never collects.
The driver asks, each poll, whether every running experiment's exec-run process
still has a live `dvc exp queue-worker` parent (Linux /proc); one whose worker
is gone is dropped: marked in .dvc/tmp/sweep-dropped (its register refuses,
stages/lib/sweepalive.py), its processes killed, its task marked failed in the
queue, its temp workspace under .dvc/tmp/exps removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from pathlib import Path

from stages.lib import fsio, sweepalive

LOST_AFTER_S = 60.0  # `Running` with neither its process nor a known worker: longer than any collection


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat fields after the command name, or None when the process is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields


def alive(pid: int | None) -> bool:
    return pid is not None and _stat(pid) is not None


def exec_run(pid: int | None) -> bool:
    """Whether PID is alive and still a `dvc exp exec-run` (not a reused pid)."""
    try:
        return alive(pid) and b"exec-run" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


def worker_parent(pid: int) -> int | None:
    """The live queue worker that runs exec-run process PID, or None when it has none."""
    fields = _stat(pid)
    if fields is None:
        return None
    ppid = int(fields[1])
    try:
        cmdline = Path(f"/proc/{ppid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return ppid if b"queue-worker" in cmdline and alive(ppid) else None


def descendants(pid: int) -> list[int]:
    """PID's child processes, grandchildren first... (from /proc), for killing a whole orphaned tree."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def workers(root: Path) -> list[int]:
    """Live `dvc exp queue-worker` processes of this project (DVC records each one's pid)."""
    pids = []
    for info in (root / ".dvc" / "tmp" / "exps" / "celery").glob("dvc-exp-worker-*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = int(json.loads(info.read_text())["pid"])
            if alive(pid) and b"queue-worker" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                pids.append(pid)
    return pids


def running(root: Path) -> dict[str, tuple[str, int | None]]:
    """{name: (stash rev, exec-run pid or None)} for every experiment DVC's queue has running."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        queue = repo.experiments.celery_queue
        out = {}
        for entry in queue.iter_active():
            info = queue.proc.get(entry.stash_rev)
            out[entry.name or entry.stash_rev[:7]] = (entry.stash_rev, info.pid if info else None)
    return out


def kill_tree(pid: int | None) -> None:
    if pid is None or not exec_run(pid):
        return
    for victim in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            os.kill(victim, signal.SIGKILL)


def drop(root: Path, names: list[str], why: str = "its queue worker died") -> None:
    """Give up on these running experiments: marked dropped, processes killed, task failed, workspace removed."""
    from celery.result import AsyncResult  # type: ignore[import-untyped]
    from dvc.repo import Repo

    for name in names:
        fsio.write_bytes(sweepalive.dropped_path(root, name), f"dropped by its sweep: {why}\n".encode())
    with Repo(str(root)) as repo:
        queue = repo.experiments.celery_queue
        entries = {e.name: e for e in queue.iter_active() if e.name in names}
        for entry in entries.values():
            info = queue.proc.get(entry.stash_rev)
            kill_tree(info.pid if info else None)
        for msg, entry in queue._iter_processed():  # DVC's own way to fail a task no worker runs
            if entry.name in entries and not AsyncResult(msg.headers["id"]).ready():
                queue.celery.backend.mark_as_failure(msg.headers["id"], None)
        for entry in entries.values():
            with contextlib.suppress(Exception):  # no info file: nothing was set up
                workspace = Path(queue._load_info(entry.stash_rev).root_dir)
                if (root / ".dvc" / "tmp" / "exps") in workspace.parents:
                    shutil.rmtree(workspace, ignore_errors=True)


class Watch:
    """Remembers each running experiment's worker, so a worker that died after its exec-run ended is seen too."""

    def __init__(self) -> None:
        self.workers: dict[str, int] = {}
        self.unknown_since: dict[str, float] = {}

    def lost(self, root: Path, names: list[str], now: float) -> list[str]:
        """Of these experiments (`Running` in the queue), those whose queue worker is gone."""
        if not names or not Path("/proc/self/stat").exists():
            return []
        found = []
        for name, (_, pid) in running(root).items():
            if name not in names:
                continue
            worker = worker_parent(pid) if pid is not None and exec_run(pid) else None
            if worker is not None:
                self.workers[name] = worker
                self.unknown_since.pop(name, None)
            elif exec_run(pid) or (name in self.workers and not alive(self.workers[name])):
                found.append(name)  # an orphaned exec-run, or an ended one whose worker died
            elif name not in self.workers and now - self.unknown_since.setdefault(name, now) > LOST_AFTER_S:
                found.append(name)
        return found
