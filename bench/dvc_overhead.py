"""Claim: the project's fixed `dvc repro` overhead is within 1.5x of DVC's own floor.

Measured: fastest wall time of a no-op `dvc repro` (every stage up to date) of
the real dvc.yaml in a scratch git+DVC copy (smoke/pipeline.py's sandbox,
synthetic data, run once to completion first), against a no-op of an empty
six-stage pipeline (`echo` stages chained by one-line files) in another
scratch repo. Both are run in turns, `--repeats` times each, same interpreter.
A no-op starts no stage, so what it costs is DVC reading dvc.yaml, params and
the lock and checking the hashes of every dep and out (from its state cache).
Prints one JSON line: project_noop_s, empty_noop_s, ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from bench._common import alternating_best, run
from smoke.sandbox import SMOKE_OVERRIDES, make_sandbox, merge

ROOT = Path(__file__).resolve().parent.parent

DVC = [sys.executable, "-m", "dvc"]


def empty_pipeline(dest: Path) -> Path:
    stages = {}
    for i in range(6):
        stage = {"cmd": f"echo {i} > out{i}.txt", "outs": [f"out{i}.txt"]}
        if i:
            stage["deps"] = [f"out{i - 1}.txt"]
        stages[f"s{i}"] = stage
    (dest / "dvc.yaml").write_text(json.dumps({"stages": stages}))  # JSON is valid YAML
    run(["git", "init", "-q"], dest)
    run([*DVC, "init", "-q"], dest)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-per-class", type=int, default=10, help="synthetic images per class (data size)")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp, "project")
        project.mkdir()
        overrides = merge(
            SMOKE_OVERRIDES,
            {"data": {"synthetic": {"train_per_class": args.train_per_class}}, "recipes": {"fast": {"epochs": 1}}},
        )
        make_sandbox(project, overrides)
        empty = Path(tmp, "empty")
        empty.mkdir()
        empty_pipeline(empty)
        for repo in (project, empty):
            run([*DVC, "repro"], repo, env)
        project_s, empty_s = alternating_best(
            lambda: run([*DVC, "repro"], project, env), lambda: run([*DVC, "repro"], empty, env), args.repeats
        )
    print(f"no-op dvc repro: project {project_s:.2f} s, empty 6-stage pipeline {empty_s:.2f} s", file=sys.stderr)
    print(
        json.dumps(
            {
                "bench": "dvc_overhead",
                "project_noop_s": round(project_s, 3),
                "empty_noop_s": round(empty_s, 3),
                "ratio": round(project_s / empty_s, 3),
                "repeats": args.repeats,
                "train_per_class": args.train_per_class,
            }
        )
    )


if __name__ == "__main__":
    main()
