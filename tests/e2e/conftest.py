"""End-to-end helpers: sandboxes built by smoke/pipeline.py and real `dvc` runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from smoke.sandbox import SMOKE_OVERRIDES, make_sandbox, merge

E2E = merge(SMOKE_OVERRIDES, {"recipes": {"fast": {"epochs": 8}}})


def dvc(sandbox: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real dvc CLI in the sandbox; output captured as text."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    base["PIPELINE_EXECUTOR"] = "local"  # `env` may ask for docker
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=sandbox,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and done.returncode:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def ran(output: str) -> list[str]:
    """Stage names that `dvc repro` actually ran, in order."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def sandbox(tmp_path: Path, overrides: dict = E2E) -> Path:
    dest = tmp_path / "project"
    dest.mkdir()
    return make_sandbox(dest, overrides)
