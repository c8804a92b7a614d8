"""Whether a sweep experiment is still wanted, asked by its register before it registers anything.

The sweep driver (sweep/guard.py) holds the project's sweep lock for its
lifetime and names its sweep there; it marks the experiments it gives up on
(their queue worker died, or the sweep was stopped) under .dvc/tmp/sweep-dropped.
A stage orphaned by a killed queue worker would otherwise still register a
model for an experiment DVC never collects. Train does not import this module,
so changing it retrains nothing.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping
from pathlib import Path

from stages.lib import locks
from stages.lib.cli import PipelineError
from stages.lib.sweepmode import SWEEP_ID


def lock_path(root: str | Path) -> Path:
    """The project's sweep lock: a live sweep driver holds it (flock) and names itself in it."""
    return Path(root) / ".dvc" / "tmp" / "sweep.lock"


def dropped_path(root: str | Path, name: str) -> Path:
    """Where the driver marks an experiment it gave up on (its queue worker died)."""
    return Path(root) / ".dvc" / "tmp" / "sweep-dropped" / name


def held(path: Path) -> bool:
    """Whether some process holds the flock on `path`; read-only, so a stage container of another
    uid can ask too (flock needs no write access)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops a flock this probe took
    return False


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
    if not held(path):
        raise PipelineError(f"sweep {sweep_id} is gone (its driver stopped): experiment {name} registers nothing")
    if sweep_id not in locks.holder(path).split():
        raise PipelineError(f"sweep {sweep_id} is gone (another sweep runs now): experiment {name} registers nothing")
    if name and dropped_path(root, name).is_file():
        why = dropped_path(root, name).read_text().strip()
        raise PipelineError(f"sweep {sweep_id} dropped experiment {name} ({why}): it registers nothing")
