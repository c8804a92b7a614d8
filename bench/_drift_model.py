"""A small model trained on the real CIFAR-100 for the drift bench, through the real stages.

A scratch git+DVC project (smoke/sandbox.py) with data.source=archive pointing at
the real archive and the `fast` recipe shrunk to the small CPU net; `dvc repro train`
there. The directory is kept, so a second bench run reuses the model (DVC skips).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from smoke.sandbox import make_sandbox
from stages.lib import model_card

# Small net, a few epochs: minutes on a CPU; no TTA (the monitor sees single views).
RECIPE = {"model": "small", "epochs": 1, "batch_size": 256, "lr": 0.2, "tta_flip": False, "tta_translate": 0}


def overrides(archive: Path, epochs: int) -> dict:
    with open(archive, "rb") as f:
        md5 = hashlib.file_digest(f, "md5").hexdigest()
    return {
        "data": {"source": "archive", "archive": {"path": str(archive.resolve()), "md5": md5}},
        "recipes": {"fast": {**RECIPE, "epochs": epochs}},
        "train": {"recipe": "fast", "compile": "off"},
    }


def ensure_model(workdir: Path, archive: Path, epochs: int) -> Path:
    """The sandbox with data/processed and models/ built from `archive`; returns it."""
    if not (workdir / "dvc.yaml").exists():
        workdir.mkdir(parents=True, exist_ok=True)
        make_sandbox(workdir, overrides(archive, epochs))
    if not model_card.weights_path(workdir / "models").exists():
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["PIPELINE_EXECUTOR"] = "local"
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        subprocess.run([sys.executable, "-m", "dvc", "repro", "train"], cwd=workdir, env=env, check=True)
    return workdir


if __name__ == "__main__":
    ensure_model(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
