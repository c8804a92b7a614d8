"""Each committed recipe, with its own net and settings, trains one short epoch on CPU
through the real train and evaluate stages; test-time augmentation on the result."""

from __future__ import annotations

import dataclasses
import os
import shutil

import mlflow
import pytest
import torch

from stages.lib import dataset, device, fsio, loop, model_card, params, tracking
from tests.conftest import write_params
from tests.integration.conftest import run_stage

BATCH = 32  # CPU-sized; each recipe's lr is scaled to it linearly (Goyal et al., 2017)


def _short(base_params: dict, name: str) -> dict:
    recipe = base_params["recipes"][name]
    return {**recipe, "epochs": 1, "batch_size": BATCH, "lr": recipe["lr"] * BATCH / recipe["batch_size"]}


@pytest.fixture(scope="module")
def recipe_run(trained_template, tmp_path_factory, base_params):
    """name -> a copy of the tiny project after `train` and `evaluate` with that recipe (each run once)."""
    done: dict[str, object] = {}

    def run(name: str):
        if name not in done:
            root = tmp_path_factory.mktemp(f"recipe-{name}") / "proj"
            shutil.copytree(trained_template, root, ignore=shutil.ignore_patterns("models", "mlflow.db", "mlartifacts"))
            raw = params.read_yaml(root / "params.yaml")
            raw["recipes"][name] = _short(base_params, name)  # the committed recipe, not the tiny one
            raw["train"]["recipe"] = name
            write_params(root / "params.yaml", raw)
            old, saved = os.getcwd(), {k: os.environ.pop(k, None) for k in ("MLFLOW_TRACKING_URI", "PIPELINE_EXECUTOR")}
            os.chdir(root)
            try:
                assert run_stage("train") == 0 and run_stage("evaluate") == 0
            finally:
                os.chdir(old)
                os.environ.update({k: v for k, v in saved.items() if v is not None})
            done[name] = root
        return done[name]

    return run


# The ResNet-18 epoch and the TTA views are the slowest tests outside e2e (2 and 1 min on 2 busy
# cores): `slow`, so `make test-fast` leaves them to `make test`.
@pytest.mark.parametrize(
    "name, net", [("fast", "resnet9"), pytest.param("resnet18", "resnet18", marks=pytest.mark.slow)]
)
def test_each_recipe_trains_one_short_epoch(recipe_run, base_params, name, net):
    root = recipe_run(name)
    card = model_card.load(root / "models")
    assert card.architecture == net
    assert card.train_params.recipe == name and card.train_params.batch_size == BATCH
    assert card.train_params.tta_flip == base_params["recipes"][name]["tta_flip"]
    top1 = fsio.read_json(root / "reports" / "metrics.json")["test"]["top1"]
    assert 0.0 <= top1 <= 1.0  # how far above chance (0.01) one tiny epoch gets varies by machine
    mlflow.set_tracking_uri(tracking.local_store(root)[0])
    mlflow.set_experiment("cifar100")
    runs = mlflow.search_runs(filter_string=f"tags.{tracking.MODEL_TAG} != ''", output_format="list")
    assert len(runs) == 1
    metrics, logged = runs[0].data.metrics, runs[0].data.params
    assert metrics["test_top1"] == pytest.approx(top1) and metrics["train_images_per_s"] > 0
    assert metrics["epoch_images"] == (900 // BATCH) * BATCH and metrics["train_duration_s"] > 0
    assert logged["train.recipe"] == name and logged["train.model"] == net
    assert not any(key.startswith("recipes.") for key in logged)  # only the recipe in use, as train.*


@pytest.mark.slow
def test_tta_keeps_the_shape_and_averages_the_views(recipe_run):
    """Exact properties of TTA on any net: shapes, and the flip view group is the mean of
    the image's and its mirror's logits. Whether TTA helps is a statistical claim about a
    trained net; that belongs in a bench and the README, not here."""
    root = recipe_run("fast")
    card, net = model_card.build(root / "models")
    cfg = card.train_params
    rt = device.resolve(dataclasses.replace(cfg, compile="off"))
    test = loop.DeviceData.from_arrays(dataset.load_arrays(root / "data" / "processed", "test"), rt.device)
    norm = loop.Normalizer(card.mean, card.std, rt)
    plain = loop.predict(net, test.x, 128, norm, rt, tta_flip=False)
    mirrored = loop.predict(net, test.x.flip(3), 128, norm, rt, tta_flip=False)
    flip = loop.predict(net, test.x, 128, norm, rt, tta_flip=True)
    full = loop.predict(net, test.x, 128, norm, rt, tta_flip=True, tta_translate=cfg.tta_translate)
    assert plain.shape == flip.shape == full.shape == (len(test.y), 100)
    assert cfg.tta_translate == 1 and not torch.allclose(flip, full)
    assert torch.allclose(flip, (plain + mirrored) / 2, atol=1e-5)
    accuracy = lambda logits: (logits.argmax(1) == test.y).float().mean().item()  # noqa: E731
    # What the evaluate stage reported is the figure over all the recipe's views.
    assert fsio.read_json(root / "reports" / "metrics.json")["test"]["top1"] == pytest.approx(accuracy(full))
