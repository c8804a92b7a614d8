"""One run per project on a cluster: a coordination.k8s.io/v1 Lease held by the runner.

Each stage's executor takes the project's Lease before it creates its Job and renews it from a
thread while the stage runs. The holder is the run (PIPELINE_RUN, else this host and the dvc
process that runs every stage of one `dvc repro`, found past any shell DVC starts the cmd with),
so the stages of one run take it back from each other, a second runner is refused in one line
naming the holder, and a Lease whose holder stopped renewing (renewTime older than
leaseDurationSeconds) is taken over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from runner.k8s_spec import APP, PROJECT_LABEL, label_value, project_id
from stages.lib.cli import PipelineError

# What DVC may start a stage's cmd through (`$SHELL -c CMD`, else /bin/sh): whether that shell
# execs the cmd or forks it differs between shells and versions, so the run's process is the first
# ancestor that is none of these.
SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "mksh", "busybox", "fish"})
MAX_HOPS = 8  # stage -> shell -> dvc is two; a deeper chain of shells is not a dvc repro


def _parent(pid: int, proc: Path) -> tuple[int, str] | None:
    """(parent pid, parent's command name) from /proc, or None where that cannot be read."""
    try:
        # /proc/PID/stat: "pid (comm) state ppid ...", and comm itself may hold spaces or ")"
        ppid = int((proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        return ppid, (proc / str(ppid) / "comm").read_text().strip()
    except (OSError, ValueError, IndexError):
        return None


def run_pid(proc: Path = Path("/proc")) -> int:
    """The pid of the process that runs every stage of this run: the nearest non-shell ancestor."""
    pid = os.getpid()
    for _ in range(MAX_HOPS):
        step = _parent(pid, proc)
        if step is None:
            return os.getppid()  # no /proc (not Linux): the parent, as DVC runs the cmd
        pid = step[0]
        if step[1] not in SHELLS or pid <= 1:
            return pid
    return pid


def identity(environ: Mapping[str, str]) -> str:
    """Who holds the Lease: the run (PIPELINE_RUN, else this host and the run's dvc process), not
    this stage's process, so that the stages of one `dvc repro` take the Lease back from each other."""
    return label_value(environ.get("PIPELINE_RUN") or f"{socket.gethostname()}-{run_pid()}")


def lease_name(workdir: Path) -> str:
    return f"{APP}-run-{project_id(workdir)}"


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # MicroTime


def expired(spec: Mapping[str, Any], now: dt.datetime) -> bool:
    """The holder stopped renewing: renewTime (or acquireTime) is older than the lease's duration."""
    stamp = spec.get("renewTime") or spec.get("acquireTime")
    if not spec.get("holderIdentity") or not stamp:
        return True
    renewed = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return now - renewed > dt.timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0))


def _body(name: str, holder: str, duration_s: int, now: dt.datetime, workdir: Path) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "labels": {PROJECT_LABEL: project_id(workdir)}},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration_s,
            "acquireTime": _stamp(now),
            "renewTime": _stamp(now),
        },
    }


def acquire(coord, namespace: str, workdir: Path, holder: str, duration_s: int) -> None:
    """Take the project's Lease (create it, take it back, or take over an expired one)."""
    from kubernetes.client.exceptions import ApiException

    name, now = lease_name(workdir), dt.datetime.now(dt.UTC)
    body = _body(name, holder, duration_s, now, workdir)
    try:
        coord.create_namespaced_lease(namespace, body, _preload_content=False)
        return
    except ApiException as exc:
        if exc.status != 409:
            raise
    current = json.loads(coord.read_namespaced_lease(name, namespace, _preload_content=False).data)
    spec, meta = current.get("spec") or {}, current.get("metadata") or {}
    other = spec.get("holderIdentity")
    if other and other != holder and not expired(spec, now):
        raise PipelineError(
            f"another run holds this project on the cluster: Lease {namespace}/{name} is held by {other} "
            f"(renewed {spec.get('renewTime')}, every {spec.get('leaseDurationSeconds')} s); wait for it to "
            f"finish, or stop it; a dead holder's Lease is taken over after {spec.get('leaseDurationSeconds')} s"
        )
    if other and other != holder:
        print(f"k8s: taking over Lease {name} from {other}, which stopped renewing it", file=sys.stderr)
    if meta.get("resourceVersion"):  # the server answers 409 if another runner took it meanwhile
        body["metadata"]["resourceVersion"] = meta["resourceVersion"]
    coord.patch_namespaced_lease(name, namespace, body, _preload_content=False)


class Renewer(threading.Thread):
    """Renews the Lease every third of its duration until stopped (a daemon: it dies with the runner)."""

    def __init__(self, coord, namespace: str, name: str, duration_s: int):
        super().__init__(name="k8s-lease", daemon=True)
        self.coord, self.namespace, self.lease, self.every = coord, namespace, name, duration_s / 3
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            body = {"spec": {"renewTime": _stamp(dt.datetime.now(dt.UTC))}}
            with contextlib.suppress(Exception):  # a missed renewal is retried; the duration covers two
                self.coord.patch_namespaced_lease(self.lease, self.namespace, body, _preload_content=False)


@contextlib.contextmanager
def held(coord, namespace: str, workdir: Path, holder: str, duration_s: int) -> Iterator[None]:
    """Hold the project's Lease for the block, renewed. Kept afterwards (not released): the run's
    next stage takes it back at once; another run waits out leaseDurationSeconds."""
    acquire(coord, namespace, workdir, holder, duration_s)
    renewer = Renewer(coord, namespace, lease_name(workdir), duration_s)
    renewer.start()
    try:
        yield
    finally:
        renewer.stopped.set()
        renewer.join(timeout=5)
