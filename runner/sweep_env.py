"""What a stage container needs from the host when it runs inside a sweep, or holds a lease.

A sweep's stages run in DVC's temp copies of the project (.dvc/tmp/exps/...),
but write to the project's MLflow store and take host-wide locks (GPU leases,
the registry alias lock). The launcher passes these variables on and mounts
the project root and the lock folder read-write at their own paths.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from runner import gpu_lease

# DVC sets DVC_EXP_NAME and DVC_ROOT (the project, not the temp copy) in queued experiments.
PASS = frozenset(
    {
        "PIPELINE_SWEEP_ID",
        "PIPELINE_SWEEP_PARENT_RUN",
        "PIPELINE_SWEEP_KEYS",
        "PIPELINE_GPU_LEASED",
        "PIPELINE_LOCK_DIR",
        "DVC_EXP_NAME",
        "DVC_ROOT",
    }
)


def rw_mounts(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Extra read-write bind mounts (host path -> same path) for a stage container."""
    paths = [str(gpu_lease.lock_dir(environ))]
    if environ.get("PIPELINE_SWEEP_ID") and environ.get("DVC_ROOT"):
        paths.append(environ["DVC_ROOT"])
    return {p: {"bind": p, "mode": "rw"} for p in paths if os.path.isdir(p)}
