"""Registered models for the serving tests, smoke runs and bench: a real MLflow store (sqlite +
artifact folder) holding untrained nets logged exactly as the register stage logs them
(stages.lib.registry.log_model with the model card in extra_files)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from stages.lib.model_card import Architecture

ROOT = Path(__file__).resolve().parent.parent  # the repository
NAME = "cifar100-classifier"
FINE = [f"fine_{i:02d}" for i in range(100)]
COARSE = [f"coarse_{i:02d}" for i in range(20)]
FINE_TO_COARSE = [i % 20 for i in range(100)]


def store_uri(root: Path) -> str:
    from stages.lib import tracking

    return tracking.local_store(root)[0]


def make_card(arch: Architecture, fine=FINE, coarse=COARSE, fine_to_coarse=FINE_TO_COARSE):
    """A checked model card for an `arch` net over these classes, with the repository's settings."""
    import dataclasses

    from stages.lib import model_card, params

    settings = params.load(ROOT / "params.yaml")
    train = dataclasses.replace(params.train_config(settings), model=arch)
    meta = {"fine_names": list(fine), "coarse_names": list(coarse), "fine_to_coarse": list(fine_to_coarse)}
    return model_card.make(arch, {**meta, "mean": [0.5] * 3, "std": [0.25] * 3}, train, settings)


def register(root: Path, seed: int, arch: Architecture = "small", champion: bool = True, card: bool = True) -> str:
    """Log an untrained `arch` net (weights from `seed`) into root's store, register it; return the version."""
    import mlflow
    import torch
    from mlflow import MlflowClient

    import stages
    from stages.lib import model, model_card, registry, tracking

    uri, artifacts = tracking.local_store(root)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("serve-tests")
    exp_id = exp.experiment_id if exp else client.create_experiment("serve-tests", artifact_location=artifacts)
    torch.manual_seed(seed)
    net = model.build(arch, len(FINE))
    with torch.no_grad():  # untrained BatchNorm stats are 0/1; random ones make the outputs differ by seed
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None  # track_running_stats
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        head = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
        head.weight.mul_(20.0)  # peaked outputs: top-k order is not decided by rounding
    serving = model.ServingModel(net, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]).eval()
    run_id = client.create_run(exp_id, run_name=f"serve-test-{seed}").info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        extra = []
        if card:
            path = Path(tmp) / "model.json"
            path.write_text(json.dumps(model_card.to_dict(make_card(arch))))
            extra = [path]
        source = registry.log_model(client, run_id, serving, len(FINE), Path(stages.__file__).parent, extra)
    client.set_terminated(run_id)
    version = registry.create_version(client, NAME, source, run_id, {"seed": str(seed)})
    if champion:
        registry.move_champion(client, NAME, version)
    return version


def pyfunc_probs(root: Path, version: str, images: np.ndarray) -> np.ndarray:
    """What MLflow's own pyfunc flavour predicts for these uint8 (N, 32, 32, 3) images."""
    import mlflow
    from mlflow import MlflowClient

    # Resolved through the registry, with no process-wide URI set (set_*_uri would leak into os.environ).
    client = MlflowClient(tracking_uri=store_uri(root), registry_uri=store_uri(root))
    return np.asarray(mlflow.pyfunc.load_model(client.get_model_version_download_uri(NAME, version)).predict(images))


def png(array: np.ndarray, fmt: str = "PNG") -> bytes:
    """uint8 (H, W, 3) -> encoded image bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def copy_store(template: Path, dest: Path) -> Path:
    """A private registry: the template's sqlite db (its versions keep pointing at the template's
    artifacts, which nothing writes to) plus the project's params.yaml."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(template / "mlflow.db", dest / "mlflow.db")
    shutil.copy2(ROOT / "params.yaml", dest / "params.yaml")
    return dest


def template_store(root: Path) -> tuple[Path, str, str]:
    """v1 (champion) and v2 (no alias), both with model cards."""
    v1 = register(root, seed=1)
    v2 = register(root, seed=2, champion=False)
    return root, v1, v2
