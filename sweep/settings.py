"""params.yaml's `sweep:` section, `make sweep`'s default grid: sweep/ owns it.

No stage reads it (stages/lib/params.py passes it over), so editing this file or a sweep
setting reruns no stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic.dataclasses import dataclass

from stages.lib import params
from stages.lib.params import Str


@dataclass(frozen=True, config=params.SECTION)
class SweepParams:
    grid: list[Str]  # DVC -S sweep overrides, e.g. recipes.fast.lr=0.2,0.4 (choice()/range() too); crossed
    set: list[Str]  # -S overrides every experiment of the sweep gets, e.g. train.recipe=fast


def sweep_params(raw: Any, where: str = "params.yaml") -> SweepParams:
    """The `sweep:` section of a loaded params file, checked (one line naming file, key and value)."""
    return params.parse_as(SweepParams, params.section(raw, "sweep", where), where, "sweep")


def load(path: str | Path) -> SweepParams:
    """The whole file checked as the stages read it, then its `sweep:` section."""
    raw = params.read_yaml(path)
    params.parse(raw, str(path))
    return sweep_params(raw, str(path))
