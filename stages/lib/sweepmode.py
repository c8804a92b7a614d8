"""Whether a stage runs as one experiment of a sweep (`make sweep`), and what that changes.

The sweep driver (sweep/run.py) sets PIPELINE_SWEEP_ID, PIPELINE_SWEEP_PARENT_RUN
and PIPELINE_SWEEP_KEYS in the environment of `dvc queue start`; DVC's queue
workers pass their environment on to each experiment and add DVC_EXP_NAME. The
environment, not params, carries it, so dvc.lock is the same as for a normal
run. Inside a sweep, train's MLflow run is a nested child of the sweep's parent
run, and register adds challenger versions but never moves `champion`.
Alias changes happen under a host-wide lock (`alias_lock`), so concurrent
registers decide on the champion one at a time. A sweep's register first checks
that its experiment is still wanted (`check_wanted`): its driver holds the
project's sweep lock for its lifetime and marks the experiments it gave up on,
so a stage orphaned by a killed queue worker registers nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from stages.lib import locks
from stages.lib.cli import PipelineError

SWEEP_ID, PARENT_RUN, KEYS = "PIPELINE_SWEEP_ID", "PIPELINE_SWEEP_PARENT_RUN", "PIPELINE_SWEEP_KEYS"
ALIAS_LOCK_TIMEOUT_S = 600.0  # a register holds it for a few registry calls; this bounds the wait
NO_PROMOTE = "sweep experiment: champion moves only through `make promote EXP=<name>`"


def lock_path(root: str | Path) -> Path:
    """The project's sweep lock: a live sweep driver holds it (flock) and names itself in it."""
    return Path(root) / ".dvc" / "tmp" / "sweep.lock"


def dropped_path(root: str | Path, name: str) -> Path:
    """Where the driver marks an experiment it gave up on (its queue worker died)."""
    return Path(root) / ".dvc" / "tmp" / "sweep-dropped" / name


def active(environ: Mapping[str, str] | None = None) -> bool:
    return bool((os.environ if environ is None else environ).get(SWEEP_ID))


def run_tags(flat_params: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """MLflow tags of a sweep experiment's run: parent (nests it in the UI), sweep id, name, swept params."""
    environ = os.environ if environ is None else environ
    if not active(environ):
        return {}
    tags = {"sweep.id": environ[SWEEP_ID], "sweep.exp": environ.get("DVC_EXP_NAME", "")}
    if environ.get(PARENT_RUN):
        tags["mlflow.parentRunId"] = environ[PARENT_RUN]
    for key in filter(None, environ.get(KEYS, "").split(",")):
        tags[f"sweep.param.{key}"] = str(flat_params.get(key, "?"))
    return tags


def version_tags(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Registry version tags: which sweep and experiment registered it."""
    environ = os.environ if environ is None else environ
    if not active(environ):
        return {}
    return {"sweep.id": environ[SWEEP_ID], "sweep.exp": environ.get("DVC_EXP_NAME", "")}


@contextlib.contextmanager
def alias_lock(tracking_uri: str, model_name: str, timeout_s: float = ALIAS_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Exclusive, host-wide, per (store, model): hold it around read-champion, decide, write-alias."""
    key = hashlib.sha256(f"{tracking_uri}\n{model_name}".encode()).hexdigest()[:16]
    who = f"pid {os.getpid()} register {os.environ.get('DVC_EXP_NAME', '')}".strip()
    with locks.exclusive(locks.lock_dir() / f"registry-{key}.lock", who, timeout_s):
        yield


def check_wanted(environ: Mapping[str, str] | None = None) -> None:
    """Raise unless this sweep experiment is still wanted: its sweep's driver is alive (it holds
    the project's sweep lock and names this sweep there) and has not dropped it."""
    environ = os.environ if environ is None else environ
    root, sweep_id, name = environ.get("DVC_ROOT"), environ.get(SWEEP_ID), environ.get("DVC_EXP_NAME", "")
    if not sweep_id or not root:
        return
    path = lock_path(root)
    if not path.parent.is_dir():
        return  # no project to ask (not run by DVC's queue)
    fd = locks.try_lock(path, f"pid {os.getpid()} checking for a live sweep")
    if fd is not None:
        os.close(fd)
        raise PipelineError(f"sweep {sweep_id} is gone (its driver stopped): experiment {name} registers nothing")
    if sweep_id not in locks.holder(path).split():
        raise PipelineError(f"sweep {sweep_id} is gone (another sweep runs now): experiment {name} registers nothing")
    if name and dropped_path(root, name).is_file():
        why = dropped_path(root, name).read_text().strip()
        raise PipelineError(f"sweep {sweep_id} dropped experiment {name} ({why}): it registers nothing")
