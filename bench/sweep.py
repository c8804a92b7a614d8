"""Claim: DVC's queue with 2 workers runs N tiny experiments in no more wall time than running
them one after another by hand (goal on a 2-core machine: at most 1.10x); on a k-GPU host,
k experiments take at most 1.2x the time of one.

Measured, in one scratch project (smoke/sweep.py's sandbox: synthetic data,
small net, the pipeline run once and committed): `sequential_s`, N `dvc exp run -S
recipes.fast.lr=V` one after another in the workspace (what a user does by hand); and
`queue_s`, the same N values as one sweep through the real driver (`dvc exp run --queue`,
`dvc queue start -j 2`, polling, MLflow parent run, report). Prints one JSON line:
experiments, jobs, sequential_s, queue_s, ratio (queue_s / sequential_s; < 1 is faster).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from smoke import sweep as sweep_smoke
from smoke.sandbox import SMOKE_OVERRIDES, merge
from sweep import run

ROOT = Path(__file__).resolve().parent.parent

LRS = ("0.01", "0.02", "0.05", "0.1", "0.2", "0.3")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", type=int, default=4, choices=range(2, len(LRS) + 1))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    lrs = LRS[: args.experiments]
    env = sweep_smoke.sandbox_env("local")
    overrides = merge(SMOKE_OVERRIDES, {"recipes": {"fast": {"epochs": args.epochs}}})
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        sweep_smoke.prepare(project, overrides, env)
        start = time.perf_counter()
        for lr in lrs:
            cmd = [sys.executable, "-m", "dvc", "exp", "run", "-S", f"recipes.fast.lr={lr}", "-S", "train.recipe=fast"]
            subprocess.run(cmd, cwd=project, env=env, check=True, capture_output=True)
        sequential = time.perf_counter() - start
        subprocess.run(["git", "checkout", "-q", "--", "."], cwd=project, env=env, check=True)
        start = time.perf_counter()
        grid = [f"recipes.fast.lr={','.join(lrs)}"]
        _, failed = run.run(project, grid, ["train.recipe=fast"], args.jobs, env, say=lambda text: None, poll_s=2.0)
        queued = time.perf_counter() - start
    result = {
        "experiments": len(lrs),
        "jobs": args.jobs,
        "failed": sorted(failed),
        "sequential_s": round(sequential, 1),
        "queue_s": round(queued, 1),
        "ratio": round(queued / sequential, 3),
    }
    print(json.dumps(result))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
