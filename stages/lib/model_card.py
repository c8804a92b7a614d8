"""The `models/` folder: its one owner. Train writes it; evaluate, register, scripts and
benches read it through here, and nothing else names its files.

It holds the weights (`model.pt`, a CPU state_dict saved by torch.save) and the model card
(`model.json`): architecture, class names, normalisation, the resolved train config the
loop ran with, and the whole settings file it came from. The card is typed (a frozen
pydantic dataclass) and checked on load, so a bad or stale card stops with one line
naming the file, the key and the value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

from stages.lib import fsio, params
from stages.lib.cli import PipelineError
from stages.lib.params import Float, Int, Str

WEIGHTS, CARD = "model.pt", "model.json"
INPUT = "uint8 (N, 3, 32, 32), normalised with mean/std in [0, 1] units"
Architecture = Literal["resnet18", "resnet9", "small"]  # the names in stages.lib.model.ARCHITECTURES
Channel3 = Annotated[list[Float], Field(min_length=3, max_length=3)]  # per RGB channel, [0, 1] units


class ModelCardError(PipelineError):
    """The model folder is missing a file or holds a card that does not check."""


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class ModelCard:
    architecture: Architecture
    num_classes: Annotated[Int, Field(ge=1)]
    input: Str
    mean: Channel3
    std: Channel3
    fine_names: list[Str]
    coarse_names: list[Str]
    fine_to_coarse: list[Annotated[Int, Field(ge=0)]]  # coarse index of each fine class
    train_params: params.TrainConfig  # what the loop ran with: run-time keys + the selected recipe
    settings: params.Params  # the whole params file the model came from

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        n = self.num_classes
        if len(self.fine_names) != n or len(self.fine_to_coarse) != n:
            counts = f"{len(self.fine_names)} fine_names, {len(self.fine_to_coarse)} fine_to_coarse"
            raise PydanticCustomError("rule", f"num_classes is {n} but the card has {counts}")
        if any(c >= len(self.coarse_names) for c in self.fine_to_coarse):
            raise PydanticCustomError("rule", f"fine_to_coarse must index the {len(self.coarse_names)} coarse_names")
        if min(self.std) <= 0:
            raise PydanticCustomError("rule", f"std must be > 0, got {self.std}")
        if self.train_params.model != self.architecture:
            raise PydanticCustomError("rule", f"architecture {self.architecture!r} != train_params.model")
        return self


def weights_path(model_dir: str | Path) -> Path:
    return Path(model_dir) / WEIGHTS


def card_path(model_dir: str | Path) -> Path:
    return Path(model_dir) / CARD


def make(
    architecture: Architecture, meta: dict, train_params: params.TrainConfig, settings: params.Params
) -> ModelCard:
    """The card of a model trained on a preprocessed dataset (meta: dataset.load_meta)."""
    return ModelCard(
        architecture=architecture,
        num_classes=len(meta["fine_names"]),
        input=INPUT,
        mean=list(meta["mean"]),
        std=list(meta["std"]),
        fine_names=list(meta["fine_names"]),
        coarse_names=list(meta["coarse_names"]),
        fine_to_coarse=list(meta["fine_to_coarse"]),
        train_params=train_params,
        settings=settings,
    )


def to_dict(card: ModelCard) -> dict[str, Any]:
    return dataclasses.asdict(card)


def from_dict(raw: Any, where: str = CARD) -> ModelCard:
    """Check a card read as JSON (e.g. from a registered model's artifacts); one line on failure."""
    try:
        return params.parse_as(ModelCard, raw, where)
    except params.ParamsError as exc:
        raise ModelCardError(str(exc)) from None


def save(model_dir: str | Path, state_dict: dict, card: ModelCard) -> str:
    """Write weights and card atomically (both or neither); return the weights' sha256."""
    import torch

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buf)
    with fsio.atomic_dir(model_dir) as scratch:
        (scratch / WEIGHTS).write_bytes(buf.getvalue())
        fsio.write_json(scratch / CARD, to_dict(card))
    return hashlib.sha256(buf.getvalue()).hexdigest()


def require(model_dir: str | Path, producer: str = "train") -> None:
    """Fail in one line when the folder lacks the card or the weights."""
    for path in (card_path(model_dir), weights_path(model_dir)):
        if not path.is_file():
            raise ModelCardError(f"{path}: file not found (run the {producer} stage)")


def load(model_dir: str | Path) -> ModelCard:
    """The checked card of the model in model_dir."""
    require(model_dir)
    return read(card_path(model_dir))


def read(path: str | Path, where: str | None = None) -> ModelCard:
    """The checked card in the file at path (a models/ folder's, or one a registered version
    carries); errors name `where` (default: the path)."""
    where = where or str(path)
    try:
        raw = fsio.read_json(path)
    except ValueError as exc:
        raise ModelCardError(f"{where}: not valid JSON: {exc}") from None
    return from_dict(raw, where)


def load_weights(model_dir: str | Path, map_location: Any = "cpu") -> dict:
    """The state_dict (tensors only: weights_only=True never unpickles code)."""
    import torch

    require(model_dir)
    return torch.load(weights_path(model_dir), map_location=map_location, weights_only=True)


def weights_sha256(model_dir: str | Path) -> str:
    """The identity of a trained model: MLflow tags and the registry refer to it."""
    require(model_dir)
    with open(weights_path(model_dir), "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def build(model_dir: str | Path, map_location: Any = "cpu") -> tuple[ModelCard, Any]:
    """(card, network with the weights loaded, in eval mode) on map_location."""
    from stages.lib import model

    card = load(model_dir)
    net = model.build(card.architecture, card.num_classes)
    net.load_state_dict(load_weights(model_dir, map_location))
    return card, net.to(map_location).eval()
