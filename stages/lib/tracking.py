"""MLflow wiring and provenance: where runs go, and what each run records.

Nothing happens at import. `configure` picks the store: MLFLOW_TRACKING_URI
when set (a team server, DagsHub), else an sqlite store and artifact folder in
the project, so a machine with no account and no network tracks runs too.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

MODEL_TAG = "model_sha256"  # ties evaluate/register to the run that trained the weights


def local_store(root: Path) -> tuple[str, str]:
    """(tracking URI, artifact root URI) of the project-local default store."""
    return f"sqlite:///{root.resolve() / 'mlflow.db'}", (root.resolve() / "mlartifacts").as_uri()


def configure(experiment: str) -> str:
    """Point MLflow at the store and experiment; return the experiment id."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    artifacts = None  # a server decides its own artifact root
    if not uri:
        uri, artifacts = local_store(Path.cwd())
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    exp_id = found.experiment_id if found else mlflow.create_experiment(experiment, artifact_location=artifacts)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state() -> dict[str, str]:
    """Commit and dirtiness of the checkout. The container launcher passes them in
    (PIPELINE_GIT_*), since stage images need no git."""
    commit = os.environ.get("PIPELINE_GIT_COMMIT") or _git("rev-parse", "HEAD")
    dirty = os.environ.get("PIPELINE_GIT_DIRTY")
    if dirty is None:
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = "unknown" if status is None else str(bool(status))
    return {"git.commit": commit or "unknown", "git.dirty": dirty}


def data_hashes(paths: list[str], lock: str | Path = "dvc.lock") -> dict[str, str]:
    """DVC's md5 of each path, as recorded by the stage that produced it in dvc.lock."""
    from stages.lib.params import read_yaml

    found: dict[str, str] = {}
    if Path(lock).is_file():
        for stage in (read_yaml(lock) or {}).get("stages", {}).values():
            for out in stage.get("outs", []):
                found[out["path"]] = out.get("md5", "unknown")
    return {f"data.{p}": found.get(p, "unknown") for p in paths}


def provenance(data_paths: list[str]) -> dict[str, str]:
    tags = git_state()
    tags.update(data_hashes(data_paths))
    tags["executor"] = os.environ.get("PIPELINE_EXECUTOR", "local")
    tags["image.id"] = os.environ.get("PIPELINE_IMAGE_ID", "none")
    return tags


def find_run(model_sha256: str) -> str | None:
    """Id of the newest run that trained these exact weights, if any."""
    import mlflow

    runs = mlflow.search_runs(
        filter_string=f"tags.{MODEL_TAG} = '{model_sha256}'",
        order_by=["attributes.start_time DESC"], max_results=1, output_format="list",
    )
    return runs[0].info.run_id if runs else None
