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
