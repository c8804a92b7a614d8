"""Typed, frozen view of params.yaml: parsed once, strict, no defaults in code.

Every key must be present with the right type and in range; unknown keys raise.
Range rules live in field metadata so one generic checker enforces them all and
the error names the file, the dotted key and the offending value.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from stages.lib.cli import PipelineError


class ParamsError(PipelineError):
    """A params file is missing a key, has an unknown one, or a bad value."""


def rule(**bounds: float) -> Any:
    """Field with range bounds: gt, ge, lt, le (checked after type)."""
    return field(metadata=bounds)


@dataclass(frozen=True)
class DownloadParams:
    url: str
    md5: str


@dataclass(frozen=True)
class ArchiveParams:
    path: str
    md5: str


@dataclass(frozen=True)
class SyntheticParams:
    train_per_class: int = rule(ge=2)
    test_per_class: int = rule(ge=1)
    noise: float = rule(ge=0)  # std of additive pixel noise, in uint8 levels
    seed: int = rule(ge=0)


@dataclass(frozen=True)
class DataParams:
    source: Literal["cifar100", "archive", "synthetic"]
    download: DownloadParams
    archive: ArchiveParams
    synthetic: SyntheticParams


@dataclass(frozen=True)
class ValidateParams:
    min_train_per_class: int = rule(ge=1)
    min_test_per_class: int = rule(ge=1)
    max_train_test_duplicates: int = rule(ge=0)
    min_image_std: float = rule(ge=0)  # below this (uint8 levels) an image counts as constant


@dataclass(frozen=True)
class PreprocessParams:
    val_fraction: float = rule(ge=0, lt=1)
    seed: int = rule(ge=0)


@dataclass(frozen=True)
class AugmentParams:
    pad: int = rule(ge=0, le=16)  # pixels of zero padding before the random 32x32 crop
    flip: bool


@dataclass(frozen=True)
class RecipeParams:
    """How to train: the net and every hyperparameter that shapes the result."""

    model: Literal["resnet18", "resnet9", "small"]
    epochs: int = rule(ge=1)
    batch_size: int = rule(ge=1)  # global: split across processes under DDP
    lr: float = rule(gt=0)  # peak learning rate of the schedule
    momentum: float = rule(ge=0, lt=1)
    nesterov: bool
    weight_decay: float = rule(ge=0)
    label_smoothing: float = rule(ge=0, lt=1)
    schedule: Literal["onecycle", "cosine"]
    warmup_fraction: float = rule(ge=0, lt=1)  # share of steps spent rising to lr
    augment: AugmentParams
    ema: float = rule(ge=0, lt=1)  # per-step decay of an exponential moving average of the weights; 0 = off
    tta_flip: bool  # evaluate on each image and its mirror, averaging the logits
    tta_translate: int = rule(ge=0, le=4)  # also on copies shifted by this many px (airbench's tta_level 2); 0 = off


@dataclass(frozen=True)
class RecipesParams:
    fast: RecipeParams
    resnet18: RecipeParams


@dataclass(frozen=True)
class TrainParams:
    """Where and how the selected recipe runs; none of these change what is learnt."""

    recipe: Literal["fast", "resnet18"]
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["auto", "fp32", "bf16"]
    compile: Literal["auto", "on", "off"]
    channels_last: bool
    distributed: Literal["auto", "off"]  # auto = one torchrun process per GPU when more than one is visible
    log_every: int = rule(ge=1)  # steps between host syncs for the progress bar
    seed: int = rule(ge=0)


@dataclass(frozen=True)
class TrainConfig(TrainParams, RecipeParams):
    """The resolved train config: run-time keys plus the selected recipe's, flat.

    This is what the loop reads and what model.json stores as `train_params`.
    """


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int = rule(ge=1)


@dataclass(frozen=True)
class RegisterParams:
    model_name: str
    promote_margin: float = rule(ge=0, le=1)  # top-1 a challenger must gain over the champion


@dataclass(frozen=True)
class ProfileParams:
    """The drift monitor's reference profile (stages/profile.py)."""

    images: int = rule(ge=10)  # test images sampled into the profile (all when fewer)
    pca_components: int = rule(ge=1, le=64)  # embedding dimensions kept
    batch_size: int = rule(ge=1)
    seed: int = rule(ge=0)


@dataclass(frozen=True)
class MlflowParams:
    experiment: str


@dataclass(frozen=True)
class Params:
    data: DataParams
    validate: ValidateParams
    preprocess: PreprocessParams
    recipes: RecipesParams
    train: TrainParams
    evaluate: EvaluateParams
    register: RegisterParams
    profile: ProfileParams
    mlflow: MlflowParams


_BOUND_TEXT = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_BOUND_OK = {
    "gt": lambda v, b: v > b,
    "ge": lambda v, b: v >= b,
    "lt": lambda v, b: v < b,
    "le": lambda v, b: v <= b,
}


def _coerce(value: Any, kind: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, where, key)
    if origin is Literal:
        if value not in typing.get_args(kind):
            choices = ", ".join(map(str, typing.get_args(kind)))
            raise ParamsError(f"{where}: {key} must be one of {choices}, got {value!r}")
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ParamsError(f"{where}: {key} must be {kind.__name__}, got {value!r}")
    return value


def _build(cls: type, raw: Any, where: str, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: {prefix or 'top level'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    dotted = lambda name: f"{prefix}.{name}" if prefix else name  # noqa: E731
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ParamsError(f"{where}: unknown key {dotted(unknown[0])}")
    values = {}
    for name, f in fields.items():
        if name not in raw:
            raise ParamsError(f"{where}: missing key {dotted(name)}")
        value = _coerce(raw[name], hints[name], where, dotted(name))
        for bound, limit in f.metadata.items():
            if not _BOUND_OK[bound](value, limit):
                raise ParamsError(f"{where}: {dotted(name)} must be {_BOUND_TEXT[bound]} {limit}, got {value!r}")
        values[name] = value
    return cls(**values)


def parse(raw: Any, where: str = "params.yaml") -> Params:
    """Build typed Params from an already-loaded mapping."""
    return _build(Params, raw, where, "")


def parse_as(cls: type, raw: Any, where: str, prefix: str) -> Any:
    """Build one section (e.g. the train config stored in a model card) with the same rules."""
    return _build(cls, raw, where, prefix)


def read_yaml(path: str | Path) -> Any:
    # ruamel's safe loader follows YAML 1.2 as DVC does, so `1e-3` is a float here too.
    from ruamel.yaml import YAML

    try:
        with open(path, encoding="utf-8") as f:
            return YAML(typ="safe", pure=True).load(f)
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except Exception as exc:  # ruamel raises many parser error types
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None


def load(path: str | Path) -> Params:
    """Read and validate the whole params file before any stage does work."""
    return parse(read_yaml(path), str(path))


def train_config(p: Params) -> TrainConfig:
    """The run-time keys of `train` merged with the recipe they select."""
    recipe = getattr(p.recipes, p.train.recipe)
    shallow = lambda obj: {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # noqa: E731
    return TrainConfig(**shallow(recipe), **shallow(p.train))


def as_dict(params: Any) -> dict:
    return dataclasses.asdict(params)


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 0.1}} -> {'train.lr': 0.1}, for MLflow params and tags."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
