"""Model registry: the promotion rule, and logging/registering a servable model.

Works with aliases (`challenger`, `champion`), never the deprecated stages.
The model is saved locally and uploaded as plain run artifacts, then registered
from that artifact location: one code path for MLflow 2.x and 3.x servers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHAMPION, CHALLENGER = "champion", "challenger"
ARTIFACT_PATH = "model"
# Version tags holding the promotion decision made at registration, so a rerun
# on the same weights reports it again byte for byte.
PROMOTED_TAG, REASON_TAG = "decision.promoted", "decision.reason"

# Version tag holding the versions that were champion before this one, oldest first
# (a JSON list of version strings): written when champion moves, read by rollback.
HISTORY_TAG = "champion_history"
HISTORY_KEEP = 50  # a tag value holds at most 5000 characters


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


@contextlib.contextmanager
def _quiet(logger: str):
    """Silence a logger's warnings for a block: saving pickled warns on every save, and the
    stages promise one line of output per outcome."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def log_model(client, run_id: str, serving, num_classes: int, code_dir: Path, extra_files: Sequence[Path] = ()) -> str:
    """Save `serving` as an MLflow pytorch model into the run's artifacts; return its source URI.

    `extra_files` (e.g. the model card model.json) land in the model folder's `extra_files/`.
    """
    import mlflow
    import torch

    example = np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp, _quiet("mlflow.pytorch"):
        local = Path(tmp) / ARTIFACT_PATH
        mlflow.pytorch.save_model(
            serving,
            str(local),
            signature=signature(num_classes),
            input_example=example,
            code_paths=[str(code_dir)],  # the pickled module's classes import from here
            # Pickled, not MLflow 3's default torch.export (pt2) archive: an exported program keeps
            # only forward(), and the server's drift monitor needs forward_with_embedding() too.
            serialization_format="pickle",
            extra_files=[str(f) for f in extra_files] or None,
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


def unsupported(exc: Exception) -> bool:
    """The server has no Model Registry: DagsHub's hosted MLflow answers registry calls with
    404 "Model Registry features are not supported" (DagsHub/client#629)."""
    code = getattr(exc, "error_code", "")
    status = exc.get_http_status_code() if hasattr(exc, "get_http_status_code") else None
    if "not supported" in str(exc) or code == "ENDPOINT_NOT_FOUND":
        return True
    return status == 404 and code != "RESOURCE_DOES_NOT_EXIST"


def logged_model(client, run_id: str) -> str | None:
    """Source URI of the model an earlier attempt logged to this run, if it is complete."""
    from mlflow.exceptions import MlflowException

    try:
        names = {Path(f.path).name for f in client.list_artifacts(run_id, ARTIFACT_PATH)}
    except MlflowException:
        # An MLflow 3 client falls back to logged-models/search when the run has no such folder;
        # 2.x servers (DagsHub's) answer that route with 404. Either way: nothing logged yet.
        return None
    return f"{client.get_run(run_id).info.artifact_uri}/{ARTIFACT_PATH}" if "MLmodel" in names else None


def record_decision(client, name: str, version: str, decision: Decision) -> None:
    client.set_model_version_tag(name, version, PROMOTED_TAG, str(decision.promote).lower())
    client.set_model_version_tag(name, version, REASON_TAG, decision.reason)


def recorded_decision(client, name: str, version: str) -> Decision | None:
    tags = client.get_model_version(name, version).tags
    if PROMOTED_TAG not in tags or REASON_TAG not in tags:
        return None
    return Decision(tags[PROMOTED_TAG] == "true", tags[REASON_TAG])


def _history(mv) -> list[str]:
    return [str(v) for v in json.loads(mv.tags.get(HISTORY_TAG, "[]"))]


def move_champion(client, name: str, version: str) -> list[str]:
    """Point `champion` at `version`, first tagging it with the champion history
    (the previous champion's history plus the previous champion); return that history."""
    from mlflow.exceptions import MlflowException

    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    if current is not None and str(current.version) == str(version):
        return _history(current)
    history = (_history(current) + [str(current.version)])[-HISTORY_KEEP:] if current is not None else []
    client.set_model_version_tag(name, str(version), HISTORY_TAG, json.dumps(history))
    client.set_registered_model_alias(name, CHAMPION, str(version))
    return history


def rollback(client, name: str) -> tuple[str, str]:
    """Move `champion` back to the previous champion; return (from version, to version)."""
    from mlflow.exceptions import MlflowException

    from stages.lib.cli import PipelineError

    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        raise PipelineError(f"model {name!r} has no {CHAMPION} alias: nothing to roll back") from None
    history = _history(current)
    if not history:
        raise PipelineError(
            f"{name} v{current.version} is {CHAMPION} with no earlier champion in its {HISTORY_TAG} tag: "
            "nothing to roll back to"
        )
    previous = history[-1]
    client.set_model_version_tag(name, previous, HISTORY_TAG, json.dumps(history[:-1]))
    client.set_registered_model_alias(name, CHAMPION, previous)
    return str(current.version), previous
