"""Typed, frozen view of params.yaml's stage settings: parsed once, strict, no defaults in code.

The sections are pydantic dataclasses: every key must be present with the right
type (no coercion: `"3"` is not an int) and in range, unknown keys raise, and
the first problem becomes one line naming the file, the dotted key, the value
and the rule (`params.yaml: recipes.fast.lr must be > 0, got -0.1`). The recipe
set is open: `recipes` maps a name to a recipe, so a new recipe is a params edit.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails, PydanticCustomError

from stages.lib.cli import PipelineError


class ParamsError(PipelineError):
    """A params file is missing a key, has an unknown one, or a bad value."""


# No coercion: YAML already typed each value, so a string where a number belongs is a mistake.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]  # an int is accepted (and becomes a float)
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
SECTION = ConfigDict(extra="forbid")  # every section: an unknown key is an error


def _md5(value: str) -> str:
    """32 hex digits, any case; stored lower case as hashlib prints it."""
    if not re.fullmatch(r"[0-9a-fA-F]{32}", value):
        raise PydanticCustomError("rule", f"must be an md5 (32 hex digits), got {value!r}")
    return value.lower()


Md5 = Annotated[Str, AfterValidator(_md5)]
Sha256 = Annotated[Str, Field(pattern=r"^[0-9a-f]{64}$")]
RecipeName = Annotated[Str, Field(pattern=r"^[A-Za-z0-9_-]+$")]  # DVC templates `recipes.${train.recipe}`


@dataclass(frozen=True, config=SECTION)
class DownloadParams:
    url: Str
    md5: Md5  # of the archive's bytes
    content_sha256: Sha256  # of its content in the canonical raw format (stages/lib/dataset.py)


@dataclass(frozen=True, config=SECTION)
class ArchiveParams:
    path: Str
    md5: Md5


@dataclass(frozen=True, config=SECTION)
class SyntheticParams:
    train_per_class: Annotated[Int, Field(ge=2)]
    test_per_class: Annotated[Int, Field(ge=1)]
    noise: Annotated[Float, Field(ge=0)]  # std of additive pixel noise, in uint8 levels
    seed: Annotated[Int, Field(ge=0)]


@dataclass(frozen=True, config=SECTION)
class DataParams:
    source: Literal["cifar100", "archive", "synthetic"]
    download: DownloadParams
    archive: ArchiveParams
    synthetic: SyntheticParams


@dataclass(frozen=True, config=SECTION)
class ValidateParams:
    min_train_per_class: Annotated[Int, Field(ge=1)]
    min_test_per_class: Annotated[Int, Field(ge=1)]
    max_train_test_duplicates: Annotated[Int, Field(ge=0)]
    min_image_std: Annotated[Float, Field(ge=0)]  # below this (uint8 levels) an image counts as constant


@dataclass(frozen=True, config=SECTION)
class PreprocessParams:
    val_fraction: Annotated[Float, Field(ge=0, lt=1)]
    seed: Annotated[Int, Field(ge=0)]


@dataclass(frozen=True, config=SECTION)
class AugmentParams:
    pad: Annotated[Int, Field(ge=0, le=16)]  # pixels of zero padding before the random 32x32 crop
    flip: Bool


@dataclass(frozen=True, config=SECTION)
class RecipeParams:
    """How to train: the net and every hyperparameter that shapes the result."""

    model: Literal["resnet18", "resnet9", "small"]
    epochs: Annotated[Int, Field(ge=1)]
    batch_size: Annotated[Int, Field(ge=1)]  # global: split across processes under DDP
    lr: Annotated[Float, Field(gt=0)]  # peak learning rate of the schedule
    momentum: Annotated[Float, Field(ge=0, lt=1)]
    nesterov: Bool
    weight_decay: Annotated[Float, Field(ge=0)]
    label_smoothing: Annotated[Float, Field(ge=0, lt=1)]
    schedule: Literal["onecycle", "cosine"]
    warmup_fraction: Annotated[Float, Field(ge=0, lt=1)]  # share of steps spent rising to lr
    augment: AugmentParams
    ema: Annotated[Float, Field(ge=0, lt=1)]  # per-step decay of an EMA of the weights; 0 = off
    tta_flip: Bool  # evaluate on each image and its mirror, averaging the logits
    tta_translate: Annotated[Int, Field(ge=0, le=4)]  # also on copies shifted this many px; 0 = off


@dataclass(frozen=True, config=SECTION)
class TrainParams:
    """Where and how the selected recipe runs; none of these change what is learnt."""

    recipe: RecipeName  # a key of `recipes` (checked by Params)
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["auto", "fp32", "bf16"]
    compile: Literal["auto", "on", "off"]
    channels_last: Bool
    distributed: Literal["auto", "off"]  # auto = one torchrun process per GPU when more than one is visible
    log_every: Annotated[Int, Field(ge=1)]  # steps between host syncs for the progress bar
    seed: Annotated[Int, Field(ge=0)]
    # Machines the train stage spans: > 1 only under PIPELINE_EXECUTOR=k8s (an Indexed Job of that
    # many pods, torchrun's c10d rendezvous on pod 0); the global batch, so what is learnt, is the same.
    nodes: Annotated[Int, Field(ge=1)]


@dataclass(frozen=True, config=SECTION)
class TrainConfig(TrainParams, RecipeParams):
    """The resolved train config: run-time keys plus the selected recipe's, flat.

    This is what the loop reads and what the model card stores as `train_params`.
    """


@dataclass(frozen=True, config=SECTION)
class EvaluateParams:
    batch_size: Annotated[Int, Field(ge=1)]


@dataclass(frozen=True, config=SECTION)
class RegisterParams:
    model_name: Str
    promote_margin: Annotated[Float, Field(ge=0, le=1)]  # top-1 a challenger must gain over the champion


@dataclass(frozen=True, config=SECTION)
class ProfileParams:
    """The drift monitor's reference profile (stages/profile.py)."""

    images: Annotated[Int, Field(ge=10)]  # test images sampled into the profile (all when fewer)
    pca_components: Annotated[Int, Field(ge=1, le=64)]  # embedding dimensions kept
    batch_size: Annotated[Int, Field(ge=1)]
    seed: Annotated[Int, Field(ge=0)]


@dataclass(frozen=True, config=SECTION)
class MlflowParams:
    experiment: Str


@dataclass(frozen=True, config=SECTION)
class Params:
    data: DataParams
    validate: ValidateParams
    preprocess: PreprocessParams
    recipes: Annotated[dict[RecipeName, RecipeParams], Field(min_length=1)]
    train: TrainParams
    evaluate: EvaluateParams
    register: RegisterParams
    profile: ProfileParams
    mlflow: MlflowParams

    @model_validator(mode="after")
    def _recipe_exists(self) -> Params:
        if self.train.recipe not in self.recipes:
            choices = ", ".join(self.recipes)
            raise PydanticCustomError("choice", f"train.recipe must be one of {choices}, got {self.train.recipe!r}")
        return self


_BOUND_TEXT = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_KIND = {"int_type": "int", "float_type": "float", "bool_type": "bool", "string_type": "str"}
_NOT_MAPPING = {"dataclass_type", "dict_type", "model_type", "dataclass_exact_type"}


def _dotted(loc: tuple) -> str:
    return ".".join(str(part) for part in loc if part != "[key]")


def _message(err: ErrorDetails) -> str:
    """One pydantic error as `key must ..., got value` (or `unknown key`/`missing key`)."""
    kind, key, value, ctx = err["type"], _dotted(err["loc"]), err.get("input"), err.get("ctx") or {}
    if kind in ("missing", "missing_argument"):
        return f"missing key {key}"
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return f"unknown key {key}"
    if kind in ("rule", "choice"):
        return f"{key} {err['msg']}".strip() if key and kind == "rule" else err["msg"]
    bound = next((b for b in _BOUND_TEXT if b in ctx), None)
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal") and bound:
        return f"{key} must be {_BOUND_TEXT[bound]} {ctx[bound]:g}, got {value!r}"
    if kind == "literal_error":
        choices = ", ".join(re.findall(r"'([^']*)'", ctx["expected"]))
        return f"{key} must be one of {choices}, got {value!r}"
    if kind in _KIND:
        return f"{key} must be {_KIND[kind]}, got {value!r}"
    if kind in _NOT_MAPPING:
        return f"{key or 'top level'} must be a mapping, got {value!r}"
    if kind in ("too_short", "too_long"):
        n, least = ctx.get("actual_length"), kind == "too_short"
        if least and ctx.get("min_length") == 1:
            return f"{key} must not be empty"
        limit = f"at least {ctx['min_length']}" if least else f"at most {ctx['max_length']}"
        return f"{key} must have {limit} items, got {n}"
    if kind == "string_pattern_mismatch":
        return f"{key} must match {ctx['pattern']} (letters, digits, _ and -), got {value!r}"
    return f"{key}: {err['msg']}, got {value!r}"  # a rule pydantic checks that we have not worded


def parse_as(cls: type, raw: Any, where: str, prefix: str = "") -> Any:
    """Build a section (or, with cls=Params, the whole file) from a loaded mapping, or raise one line."""
    try:
        return TypeAdapter(cls).validate_python(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # An unknown key first: a misspelt key (`recipee`) also makes the right one "missing".
        err = next((e for e in errors if e["type"] == "unexpected_keyword_argument"), errors[0])
        err = {**err, "loc": (*prefix.split("."), *err["loc"]) if prefix else err["loc"]}
        raise ParamsError(f"{where}: {_message(err)}") from None


# Sections params.yaml also holds that no stage reads; their owners type and check them
# (serve/settings.py, sweep/settings.py), so a serving or sweep setting is no stage's input.
OWNED_ELSEWHERE = ("serve", "sweep")


def section(raw: Any, name: str, where: str = "params.yaml") -> Any:
    """One top-level section of a loaded params file, for the owners of OWNED_ELSEWHERE to check."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: top level must be a mapping, got {raw!r}")
    if name not in raw:
        raise ParamsError(f"{where}: missing key {name}")
    return raw[name]


def parse(raw: Any, where: str = "params.yaml") -> Params:
    """Build typed Params (what the stages read) from an already-loaded mapping."""
    if isinstance(raw, dict):
        raw = {key: value for key, value in raw.items() if key not in OWNED_ELSEWHERE}
    return parse_as(Params, raw, where)


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
    recipe = p.recipes[p.train.recipe]
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
