import copy
import dataclasses
from pathlib import Path

import pytest
from torchvision.datasets import CIFAR100

from stages.lib import params
from stages.lib.params import ParamsError
from tests.conftest import write_params

_FAST = params.read_yaml(Path(__file__).resolve().parents[2] / "params.yaml")["recipes"]["fast"]


def _error(raw: dict) -> str:
    with pytest.raises(ParamsError) as exc:
        params.parse(raw)
    return str(exc.value)


@pytest.fixture
def raw(base_params):
    return copy.deepcopy(base_params)


def test_committed_params_parse_into_frozen_typed_objects(raw):
    p = params.parse(raw)
    assert isinstance(p.recipes["fast"].lr, float) and isinstance(p.recipes["resnet18"].epochs, int)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.recipes["fast"].lr = 1.0


def test_download_defaults_are_torchvisions_official_archive(raw):
    p = params.parse(raw)
    assert (p.data.download.url, p.data.download.md5) == (CIFAR100.url, CIFAR100.tgz_md5)
    assert p.data.archive.md5 == CIFAR100.tgz_md5


def test_out_of_range_names_file_key_and_value(raw):
    raw["recipes"]["fast"]["lr"] = -0.1
    assert _error(raw) == "params.yaml: recipes.fast.lr must be > 0, got -0.1"


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("train", "log_every", 0, "train.log_every must be >= 1, got 0"),
        ("preprocess", "val_fraction", 1.0, "preprocess.val_fraction must be < 1, got 1.0"),
        ("register", "promote_margin", 1.5, "register.promote_margin must be <= 1, got 1.5"),
        ("validate", "min_image_std", -1, "validate.min_image_std must be >= 0, got -1"),
    ],
)
def test_each_bound_kind_is_enforced(raw, section, key, value, expected):
    raw[section][key] = value
    assert _error(raw) == f"params.yaml: {expected}"


def test_nested_bound(raw):
    raw["recipes"]["fast"]["augment"]["pad"] = 17
    assert _error(raw) == "params.yaml: recipes.fast.augment.pad must be <= 16, got 17"


def test_unknown_key_is_rejected(raw):
    raw["train"]["learning_rate"] = 0.1
    assert _error(raw) == "params.yaml: unknown key train.learning_rate"
    del raw["train"]["learning_rate"]
    raw["recipes"]["fast"]["learning_rate"] = 0.1
    assert _error(raw) == "params.yaml: unknown key recipes.fast.learning_rate"


def test_unknown_section_is_rejected(raw):
    raw["extra"] = {}
    assert _error(raw) == "params.yaml: unknown key extra"


def test_missing_key_is_rejected(raw):
    del raw["recipes"]["fast"]["lr"]
    assert _error(raw) == "params.yaml: missing key recipes.fast.lr"


@pytest.mark.parametrize(
    "key, value, kind",
    [
        ("epochs", "3", "int"),
        ("epochs", True, "int"),
        ("epochs", 2.5, "int"),
        ("lr", "0.1", "float"),
        ("nesterov", 1, "bool"),
    ],
)
def test_wrong_types_are_rejected(raw, key, value, kind):
    raw["recipes"]["fast"][key] = value
    assert _error(raw) == f"params.yaml: recipes.fast.{key} must be {kind}, got {value!r}"


def test_int_is_accepted_where_a_float_is_expected(raw):
    raw["recipes"]["fast"]["lr"] = 1
    p = params.parse(raw)
    assert p.recipes["fast"].lr == 1.0 and isinstance(p.recipes["fast"].lr, float)


def test_choice_outside_literal_is_rejected(raw):
    raw["recipes"]["fast"]["model"] = "vgg"
    assert _error(raw) == "params.yaml: recipes.fast.model must be one of resnet18, resnet9, small, got 'vgg'"


def test_section_must_be_a_mapping(raw):
    raw["train"] = 5
    assert _error(raw) == "params.yaml: train must be a mapping, got 5"


def test_yaml_1_2_exponent_floats(tmp_path, raw):
    """`5e-4` is a float in YAML 1.2 (as DVC reads it), a string in PyYAML's 1.1."""
    path = tmp_path / "params.yaml"
    raw["recipes"]["fast"]["weight_decay"] = 0.0
    raw["recipes"]["resnet18"]["weight_decay"] = 0.1
    write_params(path, raw)
    path.write_text(path.read_text().replace("weight_decay: 0.0", "weight_decay: 5e-4"))
    assert params.load(path).recipes["fast"].weight_decay == pytest.approx(5e-4)


def test_missing_and_invalid_files_raise_params_error(tmp_path):
    with pytest.raises(ParamsError, match="file not found"):
        params.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="bad.yaml: not valid YAML"):
        params.load(bad)


def test_parse_as_checks_one_section(raw):
    stored = params.as_dict(params.train_config(params.parse(raw)))  # what model.json holds
    train = params.parse_as(params.TrainConfig, stored, "model.json", "train_params")
    assert train.model == raw["recipes"][raw["train"]["recipe"]]["model"]
    stored["epochs"] = -1
    with pytest.raises(ParamsError, match="model.json: train_params.epochs must be >= 1"):
        params.parse_as(params.TrainConfig, stored, "model.json", "train_params")


def test_flatten():
    assert params.flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("recipes", "fast", {**_FAST, "lr": 0}, "recipes.fast.lr must be > 0, got 0"),
        ("recipes", "fast", {**_FAST, "momentum": 1}, "recipes.fast.momentum must be < 1, got 1"),
        (
            "data",
            "synthetic",
            {"train_per_class": 1, "test_per_class": 1, "noise": 0.0, "seed": 0},
            "data.synthetic.train_per_class must be >= 2, got 1",
        ),
    ],
)
def test_bounds_at_their_edges(raw, section, key, value, expected):
    raw[section][key] = value
    assert _error(raw) == f"params.yaml: {expected}"


def test_bounds_accept_their_inclusive_edges(raw):
    raw["register"]["promote_margin"] = 1
    raw["preprocess"]["val_fraction"] = 0
    raw["recipes"]["fast"]["augment"]["pad"] = 16
    p = params.parse(raw)
    assert (p.register.promote_margin, p.preprocess.val_fraction, p.recipes["fast"].augment.pad) == (1.0, 0.0, 16)


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (("data", "source"), "imagenet", "data.source must be one of cifar100, archive, synthetic, got 'imagenet'"),
        (
            ("recipes", "resnet18", "schedule"),
            "step",
            "recipes.resnet18.schedule must be one of onecycle, cosine, got 'step'",
        ),
        (("train", "device"), "tpu", "train.device must be one of auto, cpu, cuda, got 'tpu'"),
        (("recipes", "fast", "augment", "flip"), "yes", "recipes.fast.augment.flip must be bool, got 'yes'"),
        (("register", "model_name"), 7, "register.model_name must be str, got 7"),
        (("data", "synthetic", "seed"), 1.0, "data.synthetic.seed must be int, got 1.0"),
    ],
)
def test_nested_choices_and_types_name_the_dotted_key(raw, path, value, expected):
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert _error(raw) == f"params.yaml: {expected}"


def test_missing_section_and_non_mapping_file(raw):
    del raw["mlflow"]
    assert _error(raw) == "params.yaml: missing key mlflow"
    assert _error([1, 2]) == "params.yaml: top level must be a mapping, got [1, 2]"


def test_load_names_the_file_it_read(tmp_path, raw):
    raw["recipes"]["fast"]["epochs"] = "many"
    path = write_params(tmp_path / "custom.yaml", raw)
    with pytest.raises(ParamsError) as exc:
        params.load(path)
    assert str(exc.value) == f"{path}: recipes.fast.epochs must be int, got 'many'"


@pytest.mark.parametrize("text, expected", [("1e-3", 0.001), ("1.0e-3", 0.001), ("2E+2", 200.0)])
def test_yaml_1_2_scientific_notation_is_a_float(tmp_path, text, expected):
    (tmp_path / "p.yaml").write_text(f"lr: {text}\n")
    value = params.read_yaml(tmp_path / "p.yaml")["lr"]
    assert isinstance(value, float) and value == pytest.approx(expected)


def test_committed_params_file_loads_from_disk():
    from tests.conftest import ROOT

    p = params.load(ROOT / "params.yaml")
    assert p.data.source in ("cifar100", "archive", "synthetic")
    assert params.flatten(params.as_dict(p))["recipes.fast.augment.pad"] == p.recipes["fast"].augment.pad


@pytest.mark.parametrize("section", ["download", "archive"])
def test_md5_is_checked_when_params_are_read(raw, section):
    raw["data"][section]["md5"] = "eb9058c3"
    assert _error(raw) == f"params.yaml: data.{section}.md5 must be an md5 (32 hex digits), got 'eb9058c3'"
    raw["data"][section]["md5"] = "g" * 32
    assert _error(raw) == f"params.yaml: data.{section}.md5 must be an md5 (32 hex digits), got '{'g' * 32}'"


def test_upper_case_md5_is_accepted_and_normalised(raw):
    raw["data"]["archive"]["md5"] = "EB9058C3A382FFC7106E4002C42A8D85"
    assert params.parse(raw).data.archive.md5 == "eb9058c3a382ffc7106e4002c42a8d85"


def test_a_misspelt_train_key_is_named_before_the_missing_one(raw):
    """`recipee` makes `recipe` missing too (DVC then says only `Could not find 'train.recipe'`)."""
    raw["train"]["recipee"] = raw["train"].pop("recipe")
    assert _error(raw) == "params.yaml: unknown key train.recipee"


def test_the_first_of_several_errors_is_reported(raw):
    raw["train"]["seed"] = -1
    raw["evaluate"]["batch_size"] = 0
    assert _error(raw) == "params.yaml: train.seed must be >= 0, got -1"


def test_replace_revalidates(raw):
    cfg = params.train_config(params.parse(raw))
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        dataclasses.replace(cfg, epochs=0)


def test_serve_and_sweep_sections_are_not_the_stages_params(raw):
    """serve/ and sweep/ type their own sections; the stages' Params passes them over, whatever they hold."""
    p = params.parse({**raw, "serve": {"anything": "goes"}, "sweep": "not even a mapping"})
    assert not hasattr(p, "serve") and not hasattr(p, "sweep")
    without = {k: v for k, v in raw.items() if k not in ("serve", "sweep")}
    assert params.parse(without) == p


def test_serve_and_sweep_owners_check_their_sections(raw):
    from serve.settings import serve_params
    from sweep.settings import sweep_params

    assert serve_params(raw).max_batch_size == raw["serve"]["max_batch_size"]
    assert list(sweep_params(raw).grid) == raw["sweep"]["grid"]
    raw["serve"]["max_batch_size"] = 0
    with pytest.raises(ParamsError, match=r"^params.yaml: serve.max_batch_size must be >= 1, got 0$"):
        serve_params(raw)
    del raw["sweep"]
    with pytest.raises(ParamsError, match=r"^params.yaml: missing key sweep$"):
        sweep_params(raw)
