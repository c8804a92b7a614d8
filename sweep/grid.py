"""The grid, checked before anything is queued or any MLflow run is opened.

Each point is expanded as DVC will expand it (its hydra sweeper), its params.yaml
written as DVC will write it (dvc.utils.hydra.apply_overrides, on a scratch copy)
and checked by the pipeline's own typed check (stages.lib.params). A swept key no
stage reads (a recipe that is not selected, the `sweep:` or `serve:` section) is
refused: its experiments would retrain nothing. Two points with the same params
are refused: DVC would run the same experiment twice.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from stages.lib import params
from stages.lib.cli import PipelineError
from sweep.state import grid_keys


def expand(items: list[str]) -> list[list[str]]:
    """The -S items crossed into points, each a list of single-value overrides (DVC's own expansion)."""
    from dvc.utils.hydra import get_hydra_sweeps

    try:
        return [point["params.yaml"] for point in get_hydra_sweeps({"params.yaml": items})]
    except Exception as exc:  # hydra's parser raises several types, all with a readable message
        raise PipelineError(f"sweep grid {' '.join(items)!r} is not DVC -S sweep syntax: {exc}") from None


def stage_keys(root: Path, recipe: str) -> list[str]:
    """The params.yaml keys dvc.yaml's stages declare, `${train.recipe}` resolved to `recipe`."""
    stages = (params.read_yaml(root / "dvc.yaml") or {}).get("stages") or {}
    keys = []
    for stage in stages.values():
        for item in stage.get("params") or []:
            names = item.get("params.yaml", []) if isinstance(item, dict) else [item]
            keys += [str(n).replace("${train.recipe}", recipe) for n in names]
    return keys


def _read_by_a_stage(key: str, read: list[str]) -> bool:
    return any(key == r or key.startswith(f"{r}.") or r.startswith(f"{key}.") for r in read)


def point_params(scratch: Path, point: list[str]) -> dict[str, Any]:
    """params.yaml as DVC will write it for this point (the scratch copy is reset first)."""
    from dvc.utils.hydra import apply_overrides

    shutil.copyfile(scratch.parent / "params.orig.yaml", scratch)
    try:
        apply_overrides(scratch, point)
    except Exception as exc:
        cause = str(exc.__cause__ or exc).splitlines()[0]  # hydra's second line suggests `+KEY`: no stage reads one
        if cause.startswith("Could not override"):
            cause += " (no such key in params.yaml)"
        raise PipelineError(f"sweep point {' '.join(point)}: {cause}") from None
    return params.read_yaml(scratch)


def check(root: Path, grid: list[str], fixed: list[str]) -> list[list[str]]:
    """The points of the sweep, or one line naming the key and value that would fail."""
    keys = grid_keys(fixed + grid)  # a malformed item first
    points = expand(fixed + grid)
    seen: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="sweep-grid-") as tmp:
        shutil.copyfile(root / "params.yaml", Path(tmp) / "params.orig.yaml")
        for point in points:
            raw = point_params(Path(tmp) / "params.yaml", point)
            params.parse(raw, f"sweep point {' '.join(point)}")
            recipe = str(raw["train"]["recipe"])
            unread = [k for k in keys if not _read_by_a_stage(k, stage_keys(root, recipe))]
            if unread:
                raise PipelineError(
                    f"sweep key {unread[0]} is read by no stage with train.recipe={recipe} "
                    "(dvc.yaml's params): its experiments would retrain nothing; sweep a key of the selected recipe"
                )
            same = json.dumps(raw, sort_keys=True, default=str)
            if same in seen:
                raise PipelineError(
                    f"sweep points {' '.join(seen[same])} and {' '.join(point)} are the same experiment: "
                    "drop the repeated value from the grid"
                )
            seen[same] = point
    return points
