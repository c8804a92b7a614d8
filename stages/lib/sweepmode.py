"""Whether a stage runs as one experiment of a sweep (`make sweep`), and what that changes.

The sweep driver (sweep/run.py) sets PIPELINE_SWEEP_ID, PIPELINE_SWEEP_PARENT_RUN
and PIPELINE_SWEEP_KEYS in the environment of `dvc queue start`; DVC's queue
workers pass their environment on to each experiment and add DVC_EXP_NAME. The
environment, not params, carries it, so dvc.lock is the same as for a normal
run. Inside a sweep, train's MLflow run is a nested child of the sweep's parent
run, and register adds challenger versions but never moves `champion`.
Alias changes happen under a host-wide lock (`alias_lock`), so concurrent
registers decide on the champion one at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from stages.lib import locks

SWEEP_ID, PARENT_RUN, KEYS = "PIPELINE_SWEEP_ID", "PIPELINE_SWEEP_PARENT_RUN", "PIPELINE_SWEEP_KEYS"
ALIAS_LOCK_TIMEOUT_S = 600.0  # a register holds it for a few registry calls; this bounds the wait
NO_PROMOTE = "sweep experiment: champion moves only through `make promote EXP=<name>`"


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
