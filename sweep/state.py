"""One sweep's state: what it runs and what it has seen (sweep/run.py drives it; sweep/mlruns.py
opens its MLflow parent run; reports/sweep.json records it)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from stages.lib.cli import PipelineError


@dataclass
class Sweep:
    root: Path
    sweep_id: str
    grid: list[str]
    fixed: list[str]
    jobs: int
    tracking_uri: str = ""
    experiment: str = ""
    parent_run: str = ""
    baseline: str = ""  # the commit the experiments start from
    names: list[str] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # failed experiment: why, one line

    @property
    def keys(self) -> list[str]:
        return grid_keys(self.grid)

    def record(self) -> dict:
        keys = ["sweep_id", "grid", "fixed", "jobs", "tracking_uri", "experiment", "parent_run", "baseline"]
        keys += ["names", "states", "reasons"]
        return {"keys": self.keys, **{k: getattr(self, k) for k in keys}}


def grid_keys(grid: list[str]) -> list[str]:
    """The params a grid sweeps: `recipes.fast.lr=0.2,0.4` -> recipes.fast.lr (hydra's +/~ prefixes dropped)."""
    keys = []
    for item in grid:
        found = re.fullmatch(r"[+~]{0,2}([\w.\-]+)=(.*)", item.strip())
        if not found:
            raise PipelineError(f"sweep grid item {item!r} is not KEY=VALUES (e.g. recipes.fast.lr=0.2,0.4)")
        keys.append(found.group(1))
    return keys
