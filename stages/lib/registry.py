"""Model registry: the promotion rule, and logging/registering a servable model.

Works with aliases (`challenger`, `champion`), never the deprecated stages.
The model is saved locally and uploaded as plain run artifacts, then registered
from that artifact location: one code path for MLflow 2.x and 3.x servers.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHAMPION, CHALLENGER = "champion", "challenger"
ARTIFACT_PATH = "model"


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(top1: float, champion_top1: float | None, margin: float) -> Decision:
    """A challenger becomes champion only by beating the champion's test top-1 by more than `margin`."""
    if champion_top1 is None:
        return Decision(True, "no champion yet: the first version becomes champion")
    if top1 > champion_top1 + margin:
        return Decision(True, f"test top-1 {top1:.4f} beats champion's {champion_top1:.4f} by more than {margin}")
    return Decision(False, f"test top-1 {top1:.4f} does not beat champion's {champion_top1:.4f} by more than {margin}")


def find_version(client, name: str, tag: str, value: str) -> str | None:
    """The registered version of `name` tagged tag=value (the same weights), if any."""
    versions = client.search_model_versions(f"name = '{name}'")
    matches = sorted((int(v.version) for v in versions if v.tags.get(tag) == value), reverse=True)
    return str(matches[0]) if matches else None


def champion(client, name: str) -> tuple[str, float] | None:
    """(version, test top-1) of the current champion, or None."""
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    return str(mv.version), float(mv.tags["metric.test_top1"])


def signature(num_classes: int):
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, 32, 32, 3))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, num_classes))]),
    )


def log_model(client, run_id: str, serving, num_classes: int, code_dir: Path, extra_files=()) -> str:
    """Save `serving` as an MLflow pytorch model into the run's artifacts; return its source URI.

    `extra_files` (paths) land in the model's folder as `extra_files/<name>`."""
    import mlflow
    import torch

    example = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / ARTIFACT_PATH
        mlflow.pytorch.save_model(
            serving,
            str(local),
            signature=signature(num_classes),
            input_example=example,
            code_paths=[str(code_dir)],  # the pickled module's classes import from here
            extra_files=[str(p) for p in extra_files] or None,
            pip_requirements=[
                f"torch=={torch.__version__.split('+')[0]}",
                f"numpy=={np.__version__}",
                f"mlflow=={mlflow.__version__}",
            ],
        )
        client.log_artifacts(run_id, str(local), ARTIFACT_PATH)
    return f"{client.get_run(run_id).info.artifact_uri}/{ARTIFACT_PATH}"


def create_version(client, name: str, source: str, run_id: str, tags: dict[str, str]) -> str:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    return str(client.create_model_version(name, source, run_id=run_id, tags=tags).version)
