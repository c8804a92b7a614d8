import hashlib
import shutil

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from stages.lib import dataset, fsio, loop, model_card, tracking
from tests.integration.conftest import run_stage, set_params

MODEL = "cifar100-classifier"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _client(project) -> MlflowClient:
    mlflow.set_tracking_uri(tracking.local_store(project)[0])
    return MlflowClient()


def test_same_seed_on_cpu_gives_identical_weights(trained, trained_template):
    shutil.rmtree(trained / "models")
    assert run_stage("train") == 0
    assert (
        model_card.weights_path(trained / "models").read_bytes()
        == model_card.weights_path(trained_template / "models").read_bytes()
    )


def test_train_outputs_and_mlflow_run(trained):
    card = model_card.load(trained / "models")
    assert card.architecture == "small" and len(card.fine_names) == 100 and len(card.mean) == 3
    assert card.train_params.epochs == 2 and card.settings.train.recipe == "fast"
    history = fsio.read_json(trained / "reports" / "train_history.json")
    assert [row["epoch"] for row in history] == [1, 2]
    assert set(history[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr"}
    client = _client(trained)
    mlflow.set_experiment("cifar100")
    run = client.get_run(tracking.find_run(model_card.weights_sha256(trained / "models")))
    assert run.data.params["train.model"] == "small" and run.data.params["data.source"] == "synthetic"
    for tag in ("git.commit", "git.dirty", "data.data/processed", "device", "torch.version", "executor", "image.id"):
        assert tag in run.data.tags
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    assert "images_per_s" in run.data.metrics and "train_duration_s" in run.data.metrics


def test_interrupted_training_resumes_to_the_same_weights(trained, trained_template, monkeypatch, capsys):
    shutil.rmtree(trained / "models")
    real = loop.train_epoch
    calls = []

    def dies_in_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", dies_in_second_epoch)
    capsys.readouterr()
    assert run_stage("train") == 130  # Ctrl-C: one line, no traceback
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        "train: interrupted by SIGINT; no partial output is left; "
        "rerunning resumes from the last completed epoch's checkpoint"
    )
    assert not (trained / "models").exists()
    assert len(list((trained / "checkpoints").glob("*.pt"))) == 1
    monkeypatch.setattr(loop, "train_epoch", real)
    assert run_stage("train") == 0
    assert "resuming after epoch 1" in capsys.readouterr().out
    assert (
        model_card.weights_path(trained / "models").read_bytes()
        == model_card.weights_path(trained_template / "models").read_bytes()
    )
    assert not list((trained / "checkpoints").glob("*.pt"))  # cleared once the run completes
    assert [row["epoch"] for row in fsio.read_json(trained / "reports" / "train_history.json")] == [1, 2]
    client = _client(trained)
    mlflow.set_experiment("cifar100")
    run = client.get_run(tracking.find_run(model_card.weights_sha256(trained / "models")))
    # The resumed process continued the interrupted run: one run holds both epochs.
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    assert run.info.status == "FINISHED"


def _interrupt_in_second_epoch(monkeypatch) -> None:
    real = loop.train_epoch
    calls = []

    def dies(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", dies)
    assert run_stage("train") == 130
    monkeypatch.setattr(loop, "train_epoch", real)


def _other_store(project, monkeypatch) -> MlflowClient:
    """Point the stages (via MLFLOW_TRACKING_URI, as a team server would be) at a fresh, empty store."""
    uri = f"sqlite:///{project / 'other' / 'mlflow.db'}"
    (project / "other").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return MlflowClient()


def test_resume_without_the_checkpoints_mlflow_run_starts_a_new_run(trained, trained_template, monkeypatch, capsys):
    _interrupt_in_second_epoch(monkeypatch)
    _other_store(trained, monkeypatch)
    capsys.readouterr()
    assert run_stage("train") == 0
    out = capsys.readouterr().out
    assert "the checkpoint's MLflow run is not in this store; starting a new run" in out
    assert "resuming after epoch 1" in out
    assert (
        model_card.weights_path(trained / "models").read_bytes()
        == model_card.weights_path(trained_template / "models").read_bytes()
    )


def test_a_checkpoint_from_other_settings_is_not_resumed(trained, monkeypatch, capsys):
    _interrupt_in_second_epoch(monkeypatch)
    stale = list((trained / "checkpoints").glob("*.pt"))
    set_params(trained, recipes={"fast": {"epochs": 1}})
    capsys.readouterr()
    assert run_stage("train") == 0
    assert "resuming" not in capsys.readouterr().out
    assert [row["epoch"] for row in fsio.read_json(trained / "reports" / "train_history.json")] == [1]
    assert list((trained / "checkpoints").glob("*.pt")) == stale  # only its own checkpoint is cleared


def test_train_on_missing_data_fails_with_one_line(project, capsys):
    assert run_stage("train") == 1
    assert (
        capsys.readouterr().err == "train: error: data/processed/meta.json: file not found (run the preprocess stage)\n"
    )
    assert not (project / "models").exists()


def test_evaluate_writes_metrics_plots_and_logs_to_the_training_run(trained):
    assert run_stage("evaluate") == 0
    metrics = fsio.read_json(trained / "reports" / "metrics.json")
    assert set(metrics["test"]) == {
        *("top1", "top5", "loss", "superclass_top1"),
        *("macro_precision", "macro_recall", "macro_f1"),
    }
    assert all(0 <= metrics["test"][k] <= 1 for k in ("macro_precision", "macro_recall", "macro_f1"))
    assert 0 <= metrics["test"]["top1"] <= metrics["test"]["top5"] <= 1
    rows = (trained / "reports" / "confusion.csv").read_text().splitlines()
    assert rows[0] == "actual,predicted" and len(rows) == 1 + 400
    assert len(fsio.read_json(trained / "reports" / "per_class.json")) == 100
    assert (trained / "reports" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    _client(trained)
    mlflow.set_experiment("cifar100")
    run = mlflow.get_run(tracking.find_run(model_card.weights_sha256(trained / "models")))
    assert run.data.metrics["test_top1"] == pytest.approx(metrics["test"]["top1"])
    assert "images_per_s" in run.data.metrics  # the same run as training


def _aliases(client, version) -> list[str]:
    return sorted(client.get_model_version(MODEL, str(version)).aliases)


def test_register_promotion_flow(trained, capsys):
    assert run_stage("evaluate") == 0
    assert run_stage("register") == 0
    first = fsio.read_json(trained / "reports" / "registry.json")
    assert (first["version"], first["aliases"], first["promoted"]) == (1, ["challenger", "champion"], True)
    client = _client(trained)
    mv = client.get_model_version(MODEL, "1")
    assert mv.tags["model_sha256"] == model_card.weights_sha256(trained / "models") and "git.commit" in mv.tags
    assert mv.tags["param.train.model"] == "small" and "metric.test_top1" in mv.tags

    written = (trained / "reports" / "registry.json").read_bytes()
    capsys.readouterr()
    assert run_stage("register") == 0  # same weights: nothing new, and the same file byte for byte
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 1
    assert (trained / "reports" / "registry.json").read_bytes() == written  # so dvc.lock does not change
    assert "register: already registered: " in capsys.readouterr().out

    set_params(trained, recipes={"fast": {"epochs": 1, "lr": 0.001}})  # a worse model
    assert run_stage("train") == 0 and run_stage("evaluate") == 0 and run_stage("register") == 0
    second = fsio.read_json(trained / "reports" / "registry.json")
    assert second["version"] == 2 and not second["promoted"]
    assert _aliases(client, 2) == ["challenger"] and _aliases(client, 1) == ["champion"]

    set_params(trained, register={"promote_margin": 2.0})  # bad input moves nothing
    assert run_stage("register") == 1
    assert "params.yaml: register.promote_margin must be <= 1, got 2.0" in capsys.readouterr().err
    assert _aliases(client, 2) == ["challenger"] and _aliases(client, 1) == ["champion"]
    assert fsio.read_json(trained / "reports" / "registry.json") == second


def test_champion_serves_raw_uint8_images(trained):
    assert run_stage("evaluate") == 0 and run_stage("register") == 0
    _client(trained)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    test = dataset.load_arrays(trained / "data" / "processed", "test")
    images = np.ascontiguousarray(np.asarray(test.x[:8]).transpose(0, 2, 3, 1))
    probs = model.predict(images)
    assert probs.shape == (8, 100) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)


def test_register_without_a_training_run_in_the_store(trained, monkeypatch):
    """Weights trained against another store still register, under a run of their own."""
    assert run_stage("evaluate") == 0
    client = _other_store(trained, monkeypatch)
    assert run_stage("register") == 0
    result = fsio.read_json(trained / "reports" / "registry.json")
    assert (result["version"], result["aliases"]) == (1, ["challenger", "champion"])
    run = client.get_run(client.get_model_version(MODEL, "1").run_id)
    assert run.info.run_name == "register" and run.data.tags["model_sha256"] == model_card.weights_sha256(
        trained / "models"
    )


def test_evaluate_with_flip_tta_and_without_its_model(trained, capsys):
    assert model_card.load(trained / "models").train_params.tta_flip  # the fast recipe's
    assert run_stage("evaluate") == 0
    assert 0 <= fsio.read_json(trained / "reports" / "metrics.json")["test"]["top1"] <= 1
    model_card.weights_path(trained / "models").unlink()
    capsys.readouterr()
    assert run_stage("evaluate") == 1
    assert capsys.readouterr().err == "evaluate: error: models/model.pt: file not found (run the train stage)\n"
    assert not (trained / "reports" / "metrics.json").exists()  # a stale result never outlives a failed run


def test_register_without_metrics_fails_with_one_line(trained, capsys):
    assert run_stage("register") == 1
    assert capsys.readouterr().err == "register: error: reports/metrics.json: file not found (run the evaluate stage)\n"
    assert not (trained / "reports" / "registry.json").exists()
