"""`dvc repro` of the real dvc.yaml, in a temporary git+DVC repo, on the synthetic source."""

import json

import mlflow
import numpy as np
import pytest
import torch

from stages.lib import dataset, params, tracking
from stages.lib import model as model_lib
from tests.conftest import write_params
from tests.e2e.conftest import dvc, ran, sandbox

STAGES = ["ingest", "validate", "preprocess", "train", "evaluate", "profile", "register"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """One full pipeline run (smoke/pipeline.py's settings) shared by the checks below, which run in order."""
    root = sandbox(tmp_path_factory.mktemp("e2e"))
    first = dvc(root, "repro")
    return root, first.stdout


def _lock(root) -> dict:
    return params.read_yaml(root / "dvc.lock")["stages"]


def test_every_stage_runs_and_reports_its_figures(repo):
    root, out = repo
    assert ran(out) == STAGES
    assert sorted(_lock(root)) == sorted(STAGES)
    test = json.loads((root / "reports" / "metrics.json").read_text())["test"]
    assert 0.0 <= test["top1"] <= 1.0  # the figure itself (1.0 measured here) is for benches, not asserts
    decision = json.loads((root / "reports" / "registry.json").read_text())
    assert (decision["version"], decision["aliases"], decision["promoted"]) == (1, ["challenger", "champion"], True)
    assert decision["test_top1"] == test["top1"]


def test_champion_loads_through_pyfunc_and_predicts_from_raw_images(repo):
    root, _ = repo
    name = json.loads((root / "reports" / "registry.json").read_text())["model"]
    mlflow.set_tracking_uri(tracking.local_store(root)[0])
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    raw = dataset.read_raw(root / "data" / "raw").test
    images = np.ascontiguousarray(raw.images[:64].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    assert images.dtype == np.uint8 and images.shape == (64, 32, 32, 3)
    probs = model.predict(images)
    assert probs.shape == (64, 100)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    # The registered model is the trained one: the same probabilities as models/ wrapped here.
    card = json.loads((root / "models" / "model.json").read_text())
    net = model_lib.build(card["architecture"], card["num_classes"])
    net.load_state_dict(torch.load(root / "models" / "model.pt", weights_only=True))
    with torch.inference_mode():
        local = model_lib.ServingModel(net.eval(), card["mean"], card["std"])(torch.from_numpy(images)).numpy()
    assert np.allclose(probs, local, atol=1e-5)


def test_second_repro_runs_nothing(repo):
    root, _ = repo
    lock = (root / "dvc.lock").read_text()
    again = dvc(root, "repro")
    assert ran(again.stdout) == []
    assert "Data and pipelines are up to date." in again.stdout
    assert (root / "dvc.lock").read_text() == lock


def test_editing_the_recipe_not_selected_reruns_nothing(repo):
    root, _ = repo
    raw = params.read_yaml(root / "params.yaml")
    assert raw["train"]["recipe"] == "fast"
    raw["recipes"]["resnet18"]["epochs"] += 1
    write_params(root / "params.yaml", raw)
    lock = (root / "dvc.lock").read_text()
    again = dvc(root, "repro")
    assert ran(again.stdout) == [] and (root / "dvc.lock").read_text() == lock
    assert "recipes.resnet18" not in lock and "recipes.fast" in lock


def test_a_train_param_reruns_only_train_and_after(repo):
    root, _ = repo
    before = _lock(root)
    champion_top1 = json.loads((root / "reports" / "registry.json").read_text())["test_top1"]
    raw = params.read_yaml(root / "params.yaml")
    raw["recipes"]["fast"]["epochs"] = 2  # a train param; fewer epochs keep the rerun short
    write_params(root / "params.yaml", raw)
    out = dvc(root, "repro").stdout
    assert ran(out) == ["train", "evaluate", "profile", "register"]
    for name in ("ingest", "validate", "preprocess"):
        assert f"Stage '{name}' didn't change, skipping" in out
    after = _lock(root)
    assert all(after[name] == before[name] for name in ("ingest", "validate", "preprocess"))
    assert after["train"]["params"]["params.yaml"]["recipes.fast"]["epochs"] == 2
    assert after["train"]["outs"] != before["train"]["outs"]  # new weights
    decision = json.loads((root / "reports" / "registry.json").read_text())
    assert decision["version"] == 2 and "challenger" in decision["aliases"]
    assert decision["promoted"] == (decision["test_top1"] > champion_top1)  # promote_margin is 0


def test_bad_params_fail_the_pipeline_naming_the_key_and_keep_dvc_lock(repo):
    root, _ = repo
    lock = (root / "dvc.lock").read_text()
    raw = params.read_yaml(root / "params.yaml")
    raw["recipes"]["fast"]["lr"] = -0.1
    write_params(root / "params.yaml", raw)
    done = dvc(root, "repro", check=False)
    assert done.returncode != 0
    assert "train: error: params.yaml: recipes.fast.lr must be > 0, got -0.1" in done.stdout + done.stderr
    assert ran(done.stdout) == ["train"]
    assert (root / "dvc.lock").read_text() == lock
