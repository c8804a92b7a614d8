"""Timing helpers shared by the bench scripts."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(cmd: list[str], cwd=None, env=None) -> None:
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def alternating_best(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Fastest seconds of a and of b, run in turns. Other load on a shared machine only
    ever adds time, so the fastest run is the steadiest estimate of each one's own cost."""
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(timed(a))
        tb.append(timed(b))
    return min(ta), min(tb)


def sync(device) -> None:
    """Wait for queued GPU work, so a timing covers it (a no-op on CPU)."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def commit(root) -> str:
    """The code's git commit for a result line: $BENCH_COMMIT (set where the tree travels without .git,
    e.g. the GPU host), else `git rev-parse` with `-dirty` for uncommitted tracked changes, else 'unknown'."""
    import os

    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    try:
        git = ["git", "-C", str(root)]
        sha = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def device_name(device) -> str:
    """'NVIDIA H200' on CUDA; 'cpu (N threads)' on CPU, the threads torch computes with."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"
