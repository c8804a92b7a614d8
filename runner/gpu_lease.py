"""GPU leases: each stage that wants GPUs gets its own, for the life of its process.

Several stages may want GPUs at once (a sweep's queue workers, two pipelines on
one host). A lease is an exclusive `flock` on one lock file per device id in a
host-wide folder (PIPELINE_LOCK_DIR, default /tmp/cifar100-locks; the Docker
runner and stage containers mount it at the same path). The kernel drops a
flock when its holder dies, so a killed stage or container frees its GPUs: a
lease survives nothing. When too few devices are free the caller waits, saying
so, and polls (bounded by PIPELINE_GPU_LEASE_TIMEOUT_S).

How many: outside a sweep, PIPELINE_GPUS=auto|all leases the whole pool (one
pipeline on the host keeps DDP on every GPU) and a list like 0,1 leases those
ids; inside a sweep (PIPELINE_SWEEP_ID set) each stage leases
PIPELINE_GPUS_PER_RUN (default 1) from the pool. The pool is
PIPELINE_GPU_POOL (e.g. 0,1,2: a declared, possibly fake, set for tests), else
the ids in CUDA_VISIBLE_DEVICES, else those `nvidia-smi -L` lists; empty on a
CPU-only host, where leasing does nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path

from stages.lib import locks
from stages.lib.cli import PipelineError
from stages.lib.locks import lock_dir

GPU_STAGES = frozenset({"train", "evaluate"})  # the stages that compute on a GPU when one is visible
DEFAULT_TIMEOUT_S = 24 * 3600.0  # a sweep's worth of waiting; the loop is bounded all the same
POLL_S = 2.0


def _ids(text: str, name: str) -> list[str]:
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if any(not re.fullmatch(r"[\w:-]+", i) for i in ids):
        raise PipelineError(f"{name} must be a comma-separated list of device ids like 0,1,2; got {text!r}")
    return ids


def _nvidia_smi_ids() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return re.findall(r"^GPU (\d+):", done.stdout, flags=re.M) if done.returncode == 0 else []


def pool(environ: Mapping[str, str]) -> list[str]:
    """The device ids this host may lease (see the module doc)."""
    if environ.get("PIPELINE_GPU_POOL") is not None:
        return _ids(environ["PIPELINE_GPU_POOL"], "PIPELINE_GPU_POOL")
    if environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return _ids(environ["CUDA_VISIBLE_DEVICES"], "CUDA_VISIBLE_DEVICES")
    return _nvidia_smi_ids()


def wanted(environ: Mapping[str, str], available: list[str]) -> tuple[int, list[str] | None]:
    """(how many to lease, or the exact ids) for this stage; (0, None) for none."""
    mode = environ.get("PIPELINE_GPUS") or "auto"
    if mode == "none" or not available:
        return 0, None
    if environ.get("PIPELINE_SWEEP_ID"):
        per_run = environ.get("PIPELINE_GPUS_PER_RUN") or "1"
        if not per_run.isdigit() or not 1 <= int(per_run) <= len(available):
            raise PipelineError(
                f"PIPELINE_GPUS_PER_RUN must be a whole number from 1 to {len(available)} "
                f"(the GPUs in the pool {','.join(available)}); got {per_run!r}"
            )
        return int(per_run), None
    if mode in ("auto", "all"):
        return len(available), None
    exact = _ids(mode, "PIPELINE_GPUS")
    unknown = [i for i in exact if i not in available]
    if unknown:
        raise PipelineError(f"PIPELINE_GPUS={mode} names {','.join(unknown)}, not in the GPU pool {available}")
    return len(exact), exact


def try_acquire(directory: Path, candidates: list[str], count: int, holder: str) -> dict[str, int] | None:
    """Lock `count` of `candidates` (first free first): {id: fd}, or None with nothing held."""
    held: dict[str, int] = {}
    for gpu in candidates:
        fd = locks.try_lock(directory / f"gpu-{gpu}.lock", holder)
        if fd is not None:
            held[gpu] = fd
            if len(held) == count:
                return held
    release(held)
    return None


def release(held: Mapping[str, int]) -> None:
    for fd in held.values():
        os.close(fd)  # closing the last fd drops the flock


@contextlib.contextmanager
def lease(
    environ: Mapping[str, str],
    holder: str,
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True),
    poll_s: float = POLL_S,
) -> Iterator[list[str] | None]:
    """Hold GPUs for the block: yields the leased ids, or None when this stage leases nothing."""
    available = pool(environ)
    count, exact = wanted(environ, available)
    if not count:
        yield None
        return
    directory = lock_dir(environ)
    locks.prepare(directory)
    candidates = exact or available
    timeout = float(environ.get("PIPELINE_GPU_LEASE_TIMEOUT_S") or DEFAULT_TIMEOUT_S)
    deadline, told = time.monotonic() + timeout, False
    held = try_acquire(directory, candidates, count, holder)
    while held is None:
        if not told:
            holders = "; ".join(f"GPU {g}: {locks.holder(directory / f'gpu-{g}.lock')}" for g in candidates)
            say(f"gpu-lease: waiting for {count} free GPU(s) of {','.join(candidates)} ({holders})")
            told = True
        if time.monotonic() > deadline:
            raise PipelineError(
                f"no {count} GPU(s) of {','.join(candidates)} came free in {timeout:.0f} s "
                "(PIPELINE_GPU_LEASE_TIMEOUT_S): see which stages hold them in the lock files "
                f"under {directory}"
            )
        time.sleep(poll_s)
        held = try_acquire(directory, candidates, count, holder)
    ids = sorted(held, key=candidates.index)
    if told:
        say(f"gpu-lease: got GPU(s) {','.join(ids)}")
    try:
        yield ids
    finally:
        release(held)


@contextlib.contextmanager
def local_stage(stage: str, environ: MutableMapping[str, str]) -> Iterator[None]:
    """The local executor's lease: a GPU stage sees only its leased GPUs (CUDA_VISIBLE_DEVICES).

    Skipped inside a stage container, whose launcher leased for it (PIPELINE_GPU_LEASED)."""
    if stage not in GPU_STAGES or environ.get("PIPELINE_GPU_LEASED"):
        yield
        return
    with lease(environ, f"pid {os.getpid()} stage {stage} {environ.get('DVC_EXP_NAME', '')}".strip()) as ids:
        if ids is not None:
            environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
            environ["PIPELINE_GPU_LEASED"] = ",".join(ids)
        yield


@contextlib.contextmanager
def container_lease(stage: str, environ: Mapping[str, str]) -> Iterator[Mapping[str, str]]:
    """The Docker launcher's lease: yields the environment to launch with.

    With a non-empty pool, a GPU stage's container gets exactly its leased ids
    (PIPELINE_GPUS=<ids>) and other stages get none; with no pool (CPU host, or a
    runner that cannot see the GPUs and was given no PIPELINE_GPU_POOL) nothing changes."""
    if not pool(environ) or (environ.get("PIPELINE_GPUS") or "auto") == "none":
        yield environ
        return
    if stage not in GPU_STAGES:
        yield {**environ, "PIPELINE_GPUS": "none"}
        return
    with lease(
        environ, f"pid {os.getpid()} container for stage {stage} {environ.get('DVC_EXP_NAME', '')}".strip()
    ) as ids:
        assert ids is not None  # a non-empty pool and a mode other than none always lease
        yield {**environ, "PIPELINE_GPUS": ",".join(ids), "PIPELINE_GPU_LEASED": ",".join(ids)}
