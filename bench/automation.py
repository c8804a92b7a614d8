"""Claim: Prefect and Airflow add at most 1.2x + 5 s to a no-op reproduce (`make run` alone).

Measured: in a scratch git+DVC copy of the pipeline (smoke/sandbox.py, synthetic
data, 1 epoch), reproduced once to completion first, the wall time from a trigger
to a finished no-op reproduce of:
- `make run` alone (docker executor; `--executor local`: `make run-local`),
- the Prefect flow `cifar100-retrain` with only its reproduce step, called in this
  process against Prefect's ephemeral server (started and warmed before timing, as
  a served deployment's is),
- `airflow dags test cifar100_retrain` with only its reproduce task (AUTOMATION_STEPS),
  from .venv-airflow against a migrated SQLite database; this includes Airflow's
  CLI start and DAG parse, which every trigger of `dags test` pays.
Run in turns, `--repeats` times each; the fastest of each is kept (load only adds).
Prints one JSON line: make_s, prefect_s, airflow_s, both ratios, and whether each
is within the goal (t <= 1.2 * make_s + 5).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._common import timed
from flows.airflow_run import airflow_env, dags_test, migrate
from flows.steps import make_cmd
from smoke.automation import prepare, run_env
from smoke.sandbox import SMOKE_OVERRIDES, merge

ROOT = Path(__file__).resolve().parent.parent

OVERRIDES = merge(SMOKE_OVERRIDES, {"recipes": {"fast": {"epochs": 1}}})


def within(t: float, base: float) -> bool:
    return t <= 1.2 * base + 5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--executor", choices=("docker", "local"), default="docker")
    args = ap.parse_args()
    if args.executor == "docker" and subprocess.run(["docker", "info"], capture_output=True).returncode:
        print("bench/automation: no Docker daemon; measuring the local executor instead", file=sys.stderr)
        args.executor = "local"
    (ROOT / ".smoke").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-automation-", dir=ROOT / ".smoke") as tmp:  # docker sees it
        base = Path(tmp)
        project = prepare(base, OVERRIDES)
        env = run_env(project, args.executor, "")
        os.environ.update(env)
        os.environ.setdefault("PREFECT_HOME", str(base / "prefect"))
        target = make_cmd("run" if args.executor == "docker" else "run-local", Path(sys.prefix))

        def make_run():
            subprocess.run(target, cwd=project, env=env, check=True, capture_output=True, timeout=3600)

        from flows import pipeline

        def prefect_run():
            out = pipeline.run_once(str(project), args.executor, ["reproduce"], reason="bench")
            assert out["state"] == "Completed", out

        aenv = airflow_env(base / "airflow", project, {**env, "AUTOMATION_STEPS": "reproduce"})
        migrate(aenv)

        def airflow_run():
            state, output = dags_test(aenv)
            assert state == "success", output[-2000:]

        make_run()  # the real run; every later one is a no-op
        prefect_run()  # starts and warms Prefect's ephemeral server
        times = {"make": [], "prefect": [], "airflow": []}
        for _ in range(args.repeats):
            for name, fn in (("make", make_run), ("prefect", prefect_run), ("airflow", airflow_run)):
                times[name].append(timed(fn))
    best = {k: min(v) for k, v in times.items()}
    print(
        json.dumps(
            {
                "bench": "automation",
                "executor": args.executor,
                "make_s": round(best["make"], 2),
                "prefect_s": round(best["prefect"], 2),
                "airflow_s": round(best["airflow"], 2),
                "prefect_ratio": round(best["prefect"] / best["make"], 3),
                "airflow_ratio": round(best["airflow"] / best["make"], 3),
                "prefect_within_goal": within(best["prefect"], best["make"]),
                "airflow_within_goal": within(best["airflow"], best["make"]),
                "repeats": args.repeats,
            }
        )
    )


if __name__ == "__main__":
    main()
