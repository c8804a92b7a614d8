import copy
import dataclasses

import pytest
from torchvision.datasets import CIFAR100

from stages.lib import params
from stages.lib.params import ParamsError
from tests.conftest import write_params


def _error(raw: dict) -> str:
    with pytest.raises(ParamsError) as exc:
        params.parse(raw)
    return str(exc.value)


@pytest.fixture
def raw(base_params):
    return copy.deepcopy(base_params)


def test_committed_params_parse_into_frozen_typed_objects(raw):
    p = params.parse(raw)
    assert isinstance(p.train.lr, float) and isinstance(p.train.epochs, int)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.train.lr = 1.0


def test_download_defaults_are_torchvisions_official_archive(raw):
    p = params.parse(raw)
    assert (p.data.download.url, p.data.download.md5) == (CIFAR100.url, CIFAR100.tgz_md5)
    assert p.data.archive.md5 == CIFAR100.tgz_md5


def test_out_of_range_names_file_key_and_value(raw):
    raw["train"]["lr"] = -0.1
    assert _error(raw) == "params.yaml: train.lr must be > 0, got -0.1"


@pytest.mark.parametrize("section, key, value, expected", [
    ("train", "epochs", 0, "train.epochs must be >= 1, got 0"),
    ("preprocess", "val_fraction", 1.0, "preprocess.val_fraction must be < 1, got 1.0"),
    ("register", "promote_margin", 1.5, "register.promote_margin must be <= 1, got 1.5"),
    ("validate", "min_image_std", -1, "validate.min_image_std must be >= 0, got -1.0"),
])
def test_each_bound_kind_is_enforced(raw, section, key, value, expected):
    raw[section][key] = value
    assert _error(raw) == f"params.yaml: {expected}"


def test_nested_bound(raw):
    raw["train"]["augment"]["pad"] = 17
    assert _error(raw) == "params.yaml: train.augment.pad must be <= 16, got 17"


def test_unknown_key_is_rejected(raw):
    raw["train"]["learning_rate"] = 0.1
    assert _error(raw) == "params.yaml: unknown key train.learning_rate"


def test_unknown_section_is_rejected(raw):
    raw["extra"] = {}
    assert _error(raw) == "params.yaml: unknown key extra"


def test_missing_key_is_rejected(raw):
    del raw["train"]["lr"]
    assert _error(raw) == "params.yaml: missing key train.lr"


@pytest.mark.parametrize("key, value, kind", [
    ("epochs", "3", "int"), ("epochs", True, "int"), ("epochs", 2.5, "int"),
    ("lr", "0.1", "float"), ("nesterov", 1, "bool"),
])
def test_wrong_types_are_rejected(raw, key, value, kind):
    raw["train"][key] = value
    assert _error(raw) == f"params.yaml: train.{key} must be {kind}, got {value!r}"


def test_int_is_accepted_where_a_float_is_expected(raw):
    raw["train"]["lr"] = 1
    assert params.parse(raw).train.lr == 1.0


def test_choice_outside_literal_is_rejected(raw):
    raw["train"]["model"] = "vgg"
    assert _error(raw) == "params.yaml: train.model must be one of resnet18, resnet9, small, got 'vgg'"


def test_section_must_be_a_mapping(raw):
    raw["train"] = 5
    assert _error(raw) == "params.yaml: train must be a mapping, got 5"


def test_yaml_1_2_exponent_floats(tmp_path, raw):
    """`5e-4` is a float in YAML 1.2 (as DVC reads it), a string in PyYAML's 1.1."""
    path = tmp_path / "params.yaml"
    raw["train"]["weight_decay"] = 0.0
    write_params(path, raw)
    path.write_text(path.read_text().replace("weight_decay: 0.0", "weight_decay: 5e-4"))
    assert params.load(path).train.weight_decay == pytest.approx(5e-4)


def test_missing_and_invalid_files_raise_params_error(tmp_path):
    with pytest.raises(ParamsError, match="file not found"):
        params.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="bad.yaml: not valid YAML"):
        params.load(bad)


def test_parse_as_checks_one_section(raw):
    train = params.parse_as(params.TrainParams, raw["train"], "model.json", "train_params")
    assert train.model == raw["train"]["model"]
    raw["train"]["epochs"] = -1
    with pytest.raises(ParamsError, match="model.json: train_params.epochs must be >= 1"):
        params.parse_as(params.TrainParams, raw["train"], "model.json", "train_params")


def test_flatten():
    assert params.flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
