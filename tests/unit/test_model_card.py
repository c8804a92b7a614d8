"""stages/lib/model_card.py: the one owner of the models/ folder (names, typed card, checks)."""

import copy

import pytest
import torch

from stages.lib import fsio, model, model_card, params
from stages.lib.model_card import ModelCardError

META = {
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
    "fine_names": [f"f{i}" for i in range(4)],
    "coarse_names": ["c0", "c1"],
    "fine_to_coarse": [0, 1, 1, 0],
}


@pytest.fixture
def settings(base_params) -> params.Params:
    raw = copy.deepcopy(base_params)
    raw["recipes"]["fast"]["model"] = "small"
    raw["train"]["recipe"] = "fast"
    return params.parse(raw)


@pytest.fixture
def card(settings) -> model_card.ModelCard:
    return model_card.make("small", META, params.train_config(settings), settings)


def _saved(tmp_path, card) -> tuple:
    net = model.build("small", card.num_classes)
    sha = model_card.save(tmp_path / "models", net.state_dict(), card)
    return tmp_path / "models", net, sha


def test_save_load_round_trip_and_the_sha_names_the_weights(tmp_path, card):
    folder, net, sha = _saved(tmp_path, card)
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.pt"]
    assert model_card.load(folder) == card and model_card.weights_sha256(folder) == sha
    loaded, rebuilt = model_card.build(folder)
    assert loaded.settings.train.recipe == "fast" and not rebuilt.training
    for key, value in net.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)


def test_saving_over_an_old_model_replaces_it_whole(tmp_path, card):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "stale.bin").write_bytes(b"x")
    folder, _, _ = _saved(tmp_path, card)
    assert not (folder / "stale.bin").exists()


def test_missing_files_are_named_with_the_stage_to_run(tmp_path, card):
    folder, _, _ = _saved(tmp_path, card)
    model_card.weights_path(folder).unlink()
    with pytest.raises(ModelCardError, match=r"models/model.pt: file not found \(run the train stage\)"):
        model_card.load(folder)
    with pytest.raises(ModelCardError, match="nothing/model.json: file not found"):
        model_card.load(tmp_path / "nothing")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["train_params"].update(epochs=0), "train_params.epochs must be >= 1, got 0"),
        (lambda c: c.update(architecture="vgg"), "architecture must be one of resnet18, resnet9, small, got 'vgg'"),
        (lambda c: c.update(extra=1), "unknown key extra"),
        (lambda c: c.pop("settings"), "missing key settings"),
        (lambda c: c.update(mean=[0.5, 0.5]), "mean must have at least 3 items, got 2"),
        (lambda c: c.update(std=[0.25] * 4), "std must have at most 3 items, got 4"),
        (lambda c: c.update(num_classes=5), "num_classes is 5 but the card has 4 fine_names, 4 fine_to_coarse"),
        (lambda c: c.update(fine_to_coarse=[0, 1, 2, 0]), "fine_to_coarse must index the 2 coarse_names"),
        (lambda c: c.update(std=[0.25, 0.0, 0.25]), "std must be > 0"),
        (lambda c: c["train_params"].update(model="resnet9"), "architecture 'small' != train_params.model"),
    ],
)
def test_a_bad_card_is_one_line_naming_file_key_and_value(tmp_path, card, change, message):
    folder, _, _ = _saved(tmp_path, card)
    raw = fsio.read_json(model_card.card_path(folder))
    change(raw)
    fsio.write_json(model_card.card_path(folder), raw)
    with pytest.raises(ModelCardError) as exc:
        model_card.load(folder)
    assert str(exc.value).startswith(f"{folder / 'model.json'}: {message}")
    assert "\n" not in str(exc.value)


def test_a_card_that_is_not_json_is_named(tmp_path, card):
    folder, _, _ = _saved(tmp_path, card)
    model_card.card_path(folder).write_text("{")
    with pytest.raises(ModelCardError, match="model.json: not valid JSON"):
        model_card.load(folder)


def test_from_dict_checks_a_card_read_elsewhere(card):
    assert model_card.from_dict(model_card.to_dict(card)) == card
    with pytest.raises(ModelCardError, match="^registry v3: missing key input$"):
        model_card.from_dict({k: v for k, v in model_card.to_dict(card).items() if k != "input"}, "registry v3")
