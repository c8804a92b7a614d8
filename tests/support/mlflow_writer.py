"""One writer of the team-MLflow concurrency test: `python -m tests.support.mlflow_writer NAME RUNS OUTDIR`
logs RUNS runs to MLFLOW_TRACKING_URI's experiment `team-concurrency`, each with params, a metric
history (log_metric per step and one log_batch) and an artifact, then prints one JSON line with the
run ids. Each step is a separate request, so two writers interleave on the server and its database.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

STEPS = 10


def main(name: str, runs: int, outdir: Path) -> None:
    import mlflow
    from mlflow.entities import Metric

    mlflow.set_experiment("team-concurrency")  # both writers may create it: MLflow resolves the race
    client, ids = mlflow.MlflowClient(), []
    for i in range(runs):
        with mlflow.start_run(run_name=f"{name}-{i}") as run:
            mlflow.log_params({"writer": name, "index": i, "lr": 0.1 * (i + 1)})
            for step in range(STEPS):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            batch = [Metric("acc", step / STEPS, 0, step) for step in range(STEPS)]
            client.log_batch(run.info.run_id, metrics=batch)
            note = outdir / f"{name}-{i}.txt"
            note.write_text(f"{name} run {i}\n")
            mlflow.log_artifact(str(note), artifact_path="notes")
            ids.append(run.info.run_id)
    print(json.dumps({"writer": name, "runs": ids}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
