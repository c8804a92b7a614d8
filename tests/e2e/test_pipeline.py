"""`dvc repro` of the real dvc.yaml, in a temporary git+DVC repo, on the synthetic source."""
import json

import mlflow
import numpy as np
import pytest

from stages.lib import dataset, params, tracking
from tests.conftest import write_params
from tests.e2e.conftest import dvc, ran, sandbox

STAGES = ["ingest", "validate", "preprocess", "train", "evaluate", "register"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """One full pipeline run shared by the checks below, which run in order."""
    root = sandbox(tmp_path_factory.mktemp("e2e"))
    first = dvc(root, "repro")
    return root, first.stdout


def test_every_stage_runs_and_the_model_learns(repo):
    root, out = repo
    assert ran(out) == STAGES
    lock = params.read_yaml(root / "dvc.lock")
    assert sorted(lock["stages"]) == sorted(STAGES)
    test = json.loads((root / "reports" / "metrics.json").read_text())["test"]
    assert test["top1"] > 0.8  # chance is 0.01


def test_champion_loads_through_pyfunc_and_predicts(repo):
    root, _ = repo
    decision = json.loads((root / "reports" / "registry.json").read_text())
    assert decision["aliases"] == ["challenger", "champion"]
    mlflow.set_tracking_uri(tracking.local_store(root)[0])
    model = mlflow.pyfunc.load_model(f"models:/{decision['model']}@champion")
    test = dataset.load_arrays(root / "data" / "processed", "test")
    images = np.ascontiguousarray(np.asarray(test.x[:64]).transpose(0, 2, 3, 1))
    probs = model.predict(images)
    assert probs.shape == (64, 100)
    assert (probs.argmax(axis=1) == np.asarray(test.y[:64])).mean() > 0.8


def test_second_repro_runs_nothing(repo):
    root, _ = repo
    lock = (root / "dvc.lock").read_text()
    again = dvc(root, "repro")
    assert ran(again.stdout) == []
    assert (root / "dvc.lock").read_text() == lock


def test_a_train_param_reruns_only_train_and_after(repo):
    root, _ = repo
    raw = params.read_yaml(root / "params.yaml")
    raw["train"]["lr"] = 0.04
    write_params(root / "params.yaml", raw)
    out = dvc(root, "repro").stdout
    assert ran(out) == ["train", "evaluate", "register"]
    assert "Stage 'preprocess' didn't change" in out


def test_bad_params_fail_the_pipeline_naming_the_key_and_keep_dvc_lock(repo):
    root, _ = repo
    lock = (root / "dvc.lock").read_text()
    raw = params.read_yaml(root / "params.yaml")
    raw["train"]["lr"] = -0.1
    write_params(root / "params.yaml", raw)
    done = dvc(root, "repro", check=False)
    assert done.returncode != 0
    assert "params.yaml: train.lr must be > 0, got -0.1" in done.stdout + done.stderr
    assert (root / "dvc.lock").read_text() == lock
