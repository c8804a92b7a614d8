"""The sweep's MLflow side: its parent run, and the epoch each running experiment is in.

The parent run is created in the project's store before any worker starts, so
the store exists (and is migrated) before concurrent stages write to it.
"""

from __future__ import annotations

from collections.abc import Mapping

from sweep.state import Sweep


def open_parent(sw: Sweep, environ: Mapping[str, str]) -> None:
    """The sweep's MLflow parent run, in the project's store (created, and migrated, before any worker)."""
    import mlflow
    from mlflow import MlflowClient

    from stages.lib import params, tracking

    sw.experiment = params.load(sw.root / "params.yaml").mlflow.experiment
    uri, artifacts = environ.get("MLFLOW_TRACKING_URI"), None
    if not uri:
        uri, artifacts = tracking.local_store(sw.root)
    if uri.startswith(("http://", "https://")):
        tracking.check_server(uri)
    sw.tracking_uri = uri
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(sw.experiment)
    exp_id = found.experiment_id if found else client.create_experiment(sw.experiment, artifact_location=artifacts)
    tags = {"sweep.id": sw.sweep_id, "sweep.grid": " ".join(sw.grid), "sweep.set": " ".join(sw.fixed)}
    sw.parent_run = client.create_run(exp_id, run_name=sw.sweep_id, tags=tags).info.run_id


def epochs(sw: Sweep) -> dict[str, str]:
    """{experiment: 'epoch e/E'} from the child runs' `epoch` metric (train logs one per epoch)."""
    from mlflow import MlflowClient

    client = MlflowClient(sw.tracking_uri)
    found = client.search_runs(
        [client.get_run(sw.parent_run).info.experiment_id],
        filter_string=f"tags.`sweep.id` = '{sw.sweep_id}'",
        max_results=1000,
    )
    out = {}
    for run in found:
        name, epoch = run.data.tags.get("sweep.exp"), run.data.metrics.get("epoch")
        if name and epoch is not None:
            out[name] = f"epoch {int(epoch)}/{run.data.params.get('train.epochs', '?')}"
    return out
