"""The profile stage on the trained tiny project, and register logging it with the model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mlflow
import numpy as np
from mlflow import MlflowClient

from serve.drift import DriftMonitor
from stages.lib import dataset, drift_profile, fsio, tracking
from tests.integration.conftest import run_stage, set_params

PROFILE = Path("reports") / "reference_profile.json"


def test_profile_describes_the_test_split_through_the_serving_model(trained):
    assert run_stage("profile") == 0
    prof = fsio.read_json(trained / PROFILE)
    card = fsio.read_json(trained / "models" / "model.json")
    assert prof["images"] == 400  # the whole tiny test split: fewer than profile.images
    assert set(prof["features"]) == {*drift_profile.IMAGE_FEATURES, "confidence", *(f"pca_{i}" for i in range(8))}
    assert prof["classes"]["names"] == card["fine_names"] and sum(prof["classes"]["counts"]) == 400
    assert prof["embedding_dim"] == 128 and len(prof["pca"]["components"]) == 8
    sha = hashlib.sha256((trained / "models" / "model.pt").read_bytes()).hexdigest()
    assert prof["source"] == {"split": "test", "seed": 0, "model_sha256": sha}
    test = dataset.load_arrays(trained / "data" / "processed", "test")
    x = np.ascontiguousarray(np.asarray(test.x).transpose(0, 2, 3, 1))
    feats = drift_profile.image_features(x)
    assert prof["features"]["brightness"] == [float(f"{v:.5g}") for v in feats["brightness"]]
    first = (trained / PROFILE).read_bytes()
    assert run_stage("profile") == 0 and (trained / PROFILE).read_bytes() == first  # reproducible bytes


def test_profile_samples_a_seeded_subset(trained):
    set_params(trained, profile={"images": 50, "pca_components": 3})
    assert run_stage("profile") == 0
    prof = fsio.read_json(trained / PROFILE)
    assert prof["images"] == 50 and len(prof["features"]["contrast"]) == 50 and "pca_3" not in prof["features"]


def test_profile_fails_in_one_line_without_a_model_or_with_bad_params(trained, capsys):
    set_params(trained, profile={"pca_components": 0})
    assert run_stage("profile") == 1
    assert capsys.readouterr().err == "profile: error: params.yaml: profile.pca_components must be >= 1, got 0\n"
    set_params(trained, profile={"pca_components": 8})
    (trained / "models" / "model.pt").unlink()
    assert run_stage("profile") == 1
    assert capsys.readouterr().err == "profile: error: models/model.pt: file not found (run the train stage)\n"
    assert not (trained / PROFILE).exists()  # the stale profile is gone


def test_register_logs_the_profile_with_the_model(trained, capsys):
    assert run_stage("evaluate") == 0
    (trained / PROFILE).unlink()
    assert run_stage("register") == 1
    assert capsys.readouterr().err == f"register: error: {PROFILE}: file not found (run the profile stage)\n"
    assert run_stage("profile") == 0 and run_stage("register") == 0
    mlflow.set_tracking_uri(tracking.local_store(trained)[0])
    mv = MlflowClient().get_model_version_by_alias("cifar100-classifier", "champion")
    local = mlflow.artifacts.download_artifacts(f"{mv.source}/extra_files/reference_profile.json")
    assert Path(local).read_bytes() == (trained / PROFILE).read_bytes()
    monitor = DriftMonitor.from_profile(json.loads(Path(local).read_text()), window=50)
    assert monitor.names[-1] == "pca_7"  # what a server loads from the registered model works
