"""A registered version loaded for serving: the MLflow pytorch model, its card's
class names, and (when the version has a reference profile) a drift monitor.

Loading goes through MLflow: the version's folder is downloaded with
`mlflow.artifacts.download_artifacts` and read by `mlflow.pytorch.load_model`.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # for annotations only: torch is imported where used (heavy), as is serve.drift
    import torch

    from serve.drift import DriftMonitor

log = logging.getLogger("serve")
CARD = "extra_files/model.json"  # the model card, saved with the model by registry.log_model
PROFILE = "extra_files/reference_profile.json"  # the drift reference profile, when the pipeline made one


@dataclass
class LoadedModel:
    name: str
    version: str
    alias: str | None  # the alias it was loaded for; None when pinned by version
    module: torch.nn.Module  # uint8 (N, 32, 32, 3) -> probs (N, C)
    device: str
    fine_names: list[str]
    coarse_names: list[str]
    fine_to_coarse: np.ndarray  # int (C,): superclass index of each fine class
    monitor: DriftMonitor | None = None  # fed by the (single) forward thread

    coarse_matrix: np.ndarray | None = None  # (C, K) one-hot: fine probs @ it = superclass probs

    def __post_init__(self) -> None:
        self.coarse_matrix = np.zeros((len(self.fine_names), len(self.coarse_names)), dtype=np.float32)
        self.coarse_matrix[np.arange(len(self.fine_names)), self.fine_to_coarse] = 1.0

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """uint8 (N, 32, 32, 3) -> (probs float32 (N, C), embedding (N, D) or None)."""
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(images).to(self.device)
            forward_with_embedding = getattr(self.module, "forward_with_embedding", None)  # ServingModel's
            if self.monitor is not None and forward_with_embedding is not None:
                probs, emb = forward_with_embedding(x)
                return probs.float().cpu().numpy(), emb.float().cpu().numpy()
            return self.module(x).float().cpu().numpy(), None


def pick_device(wanted: str) -> str:
    import torch

    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return wanted


def read_card(model_dir: Path, uri: str):
    """The version's model card, checked by its owner (stages/lib/model_card.py); None without one."""
    from stages.lib import model_card

    path = model_dir / CARD
    return model_card.read(path, f"{uri}: {CARD}") if path.exists() else None


def _names(card, num_classes: int) -> tuple[list[str], list[str], np.ndarray]:
    """Class names from the card; placeholders for a version registered without one."""
    if card is None:
        return [f"class_{i}" for i in range(num_classes)], ["unknown"], np.zeros(num_classes, dtype=np.int64)
    return list(card.fine_names), list(card.coarse_names), np.asarray(card.fine_to_coarse, dtype=np.int64)


def attach_monitor(model_dir: Path, window: int = 500):
    """The drift monitor for this version, or None when it was registered without a reference
    profile (the drift gauges then stay 0)."""
    from serve import drift

    profile = model_dir / PROFILE
    return drift.DriftMonitor.from_profile(profile, window=window) if profile.exists() else None


def load_version(
    client, name: str, version: str, alias: str | None, device: str, drift_window: int = 500
) -> LoadedModel:
    """Download and load `models:/name/version`; raises on any failure (the caller keeps the old one)."""
    import mlflow
    import torch

    with tempfile.TemporaryDirectory(prefix="serve-model-") as tmp:
        uri = f"models:/{name}/{version}"
        source = client.get_model_version_download_uri(name, version)  # this client's registry, not the global one
        local = Path(mlflow.artifacts.download_artifacts(source, dst_path=tmp, tracking_uri=client.tracking_uri))
        module = mlflow.pytorch.load_model(str(local), map_location="cpu").to(device)
        # Saved in eval mode; MLflow 3 may hand back an exported graph module, whose eval() raises.
        card = read_card(local, uri)
        monitor = attach_monitor(local, drift_window)
    with torch.inference_mode():  # one forward now, so a broken version fails here and not on a request
        probs = module(torch.zeros((1, 32, 32, 3), dtype=torch.uint8, device=device))
    fine, coarse, f2c = _names(card, int(probs.shape[1]))
    if len(fine) != probs.shape[1]:
        raise ValueError(f"{uri}: model gives {probs.shape[1]} classes but its card names {len(fine)}")
    return LoadedModel(name, str(version), alias, module, device, fine, coarse, f2c, monitor)


def resolve(client, name: str, model: str) -> tuple[str, str | None]:
    """(version, alias) that `model` (an alias or a version number) points at now."""
    if model.isdigit():
        return model, None
    return str(client.get_model_version_by_alias(name, model).version), model
