"""The train stage as two torchrun processes on CPU (Gloo): the stage sees "two GPUs"
(torch.cuda patched in this process only, standing in for the hardware) and re-runs
itself under torchrun; the workers, which see the real machine, train on CPU."""

from __future__ import annotations

import shutil

import mlflow
import numpy as np
import pytest
import torch

from stages.lib import dataset, fsio, model, model_card, tracking
from tests.integration.conftest import run_stage


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def _runs(project) -> list:
    mlflow.set_tracking_uri(tracking.local_store(project)[0])
    mlflow.set_experiment("cifar100")
    return mlflow.search_runs(filter_string=f"tags.{tracking.MODEL_TAG} != ''", output_format="list")


def test_two_gloo_processes_see_one_process_worth_of_samples_and_give_a_working_model(trained, two_gpus, capfd):
    (single,) = _runs(trained)  # the template's one-process run
    shutil.rmtree(trained / "models")
    assert run_stage("train") == 0
    out = capfd.readouterr().out
    assert "train: 2 GPUs visible: one DDP process per GPU under torchrun" in out
    assert out.count("train: 2 epochs, last") == 1  # rank 0 alone reports (and writes)

    runs = _runs(trained)
    assert len(runs) == 2  # one new run, not one per rank
    ddp = next(r for r in runs if r.info.run_id != single.info.run_id)
    assert ddp.data.tags["world_size"] == "2" and single.data.tags["world_size"] == "1"
    client = mlflow.MlflowClient()
    per_epoch = [m.value for m in client.get_metric_history(ddp.info.run_id, "epoch_images")]
    assert per_epoch == [m.value for m in client.get_metric_history(single.info.run_id, "epoch_images")] == [896, 896]
    assert [row["epoch"] for row in fsio.read_json(trained / "reports" / "train_history.json")] == [1, 2]
    assert not list((trained / "checkpoints").glob("*.pt"))

    card, net = model_card.build(trained / "models")
    serving = model.ServingModel(net, card.mean, card.std).eval()
    test = dataset.load_arrays(trained / "data" / "processed", "test")
    images = torch.from_numpy(np.ascontiguousarray(np.asarray(test.x).transpose(0, 2, 3, 1)))
    with torch.no_grad():
        probs = serving(images)
    assert probs.shape == (400, 100) and torch.allclose(probs.sum(1), torch.ones(400), atol=1e-4)
    assert (probs.argmax(1).numpy() == np.asarray(test.y)).mean() > 0.02  # chance is 0.01


def test_a_failing_rank_fails_the_stage(trained, two_gpus, capfd):
    (trained / "data" / "processed" / "meta.json").unlink()
    assert run_stage("train") == 1
    err = capfd.readouterr().err
    message = "train: error: data/processed/meta.json: file not found (run the preprocess stage)"
    assert err.count(message) == 2  # each rank says why, in one line
    assert err.rstrip().endswith("train: error: torchrun exited with code 1 (the processes' own errors are above)")
