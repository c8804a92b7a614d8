"""`make sweep-smoke`: a sweep of 5 tiny experiments on synthetic data, 2 at a time, away from real outputs.

Builds a sandbox under `.smoke/` (smoke/sandbox.py: the smoke settings,
fewer epochs), runs the pipeline there once and commits it (so a champion
exists and the queued experiments share ingest..preprocess), then runs the
grid through the real sweep driver (sweep/run.py) on DVC's queue and prints
one JSON line: experiments, succeeded, failed, MLflow child runs, whether
champion moved, the report's path (and with --executor k8s, on an emulated cluster whose test
kubelet runs each stage Job's pod: the Jobs created and the pods left). The sandbox is kept (the
report is in it); `make clean` removes it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from proc.git import git
from smoke.sandbox import SMOKE_OVERRIDES, make_sandbox, merge, scratch

GRID = ["recipes.fast.lr=0.01,0.02,0.03,0.1,0.2"]  # not 0.05, the baseline: DVC would not re-train it
GIT_ENV = {"GIT_AUTHOR_NAME": "smoke", "GIT_AUTHOR_EMAIL": "smoke@localhost"}
GIT_ENV |= {"GIT_COMMITTER_NAME": "smoke", "GIT_COMMITTER_EMAIL": "smoke@localhost"}


def sandbox_env(executor: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PIPELINE_SWEEP", "DVC_EXP", "K8S_"))}
    env.update(GIT_ENV, PIPELINE_EXECUTOR=executor)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def prepare(dest: Path, overrides: dict, env: dict[str, str]) -> Path:
    """A sandbox with the pipeline run once and committed (dvc.lock, the first champion)."""
    make_sandbox(dest, overrides)
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=dest, env=env, check=True)
    git("add", "-A", cwd=dest, env=env)
    git("commit", "-q", "-m", "baseline run", cwd=dest, env=env)
    return dest


def champion(project: Path) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from stages.lib import tracking

    client = MlflowClient(tracking.local_store(project)[0])
    try:
        mv = client.get_model_version_by_alias("cifar100-classifier", "champion")
    except MlflowException:
        return None
    return str(mv.version)


def sweep_smoke(project: Path, grid: list[str], jobs: int | None, env: dict[str, str], say=print) -> dict:
    """Run the sweep in a prepared sandbox; the summary the JSON line prints."""
    from sweep import report, run

    before = champion(project)
    sw, failed = run.run(project, grid, ["train.recipe=fast"], jobs, env, say=say, poll_s=3.0)
    return {
        "experiments": len(sw.names),
        "succeeded": sum(s == "Success" for s in sw.states.values()),
        "failed": sorted(failed),
        "mlflow_child_runs": len(report.child_runs(sw.record())),
        "champion_moved": champion(project) != before,
        "report": str(project / report.MD),
    }


def on_k8s(dest: Path, overrides: dict, jobs: int | None, env: dict[str, str], grid: list[str]) -> dict:
    """The sweep with every stage a Job on an emulated cluster (smoke/k8s.py): each experiment's
    queue worker runs its own `dvc exp run`, so each holds its own Lease and creates its own Jobs."""
    from smoke import k8s

    with k8s.emulated({}) as (cluster, kubelet, _, settings):
        env = {**env, **settings}
        summary = sweep_smoke(prepare(dest, overrides, env), grid, jobs, env, say=lambda t: print(t, file=sys.stderr))
        summary["jobs_created"] = k8s.job_posts(cluster)
        summary["pods_left"] = k8s.pods_left(cluster)
        summary["failed"] += kubelet.errors
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--grid", default=" ".join(GRID), help="DVC -S sweep items, space-separated")
    ap.add_argument(
        "--executor", choices=("local", "docker", "k8s"), default=os.environ.get("PIPELINE_EXECUTOR") or "local"
    )
    args = ap.parse_args()
    env = sandbox_env(args.executor)
    overrides = merge(SMOKE_OVERRIDES, {"recipes": {"fast": {"epochs": args.epochs}}})
    grid = args.grid.split()
    with scratch("sweep-", keep=True) as dest:  # kept: the summary points at its reports/sweep.md
        if args.executor == "k8s":
            summary = on_k8s(dest, overrides, args.jobs, env, grid)
        else:
            say = lambda t: print(t, file=sys.stderr)  # noqa: E731
            summary = sweep_smoke(prepare(dest, overrides, env), grid, args.jobs, env, say=say)
    print(json.dumps(summary))
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
