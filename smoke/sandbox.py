"""Scratch copies of the pipeline: a fresh git+DVC repo holding the pipeline's
sources with params overridden (the smoke settings: 100 classes x 30 synthetic
images, small net, few epochs), and `dvc repro` there with its own MLflow store.

Used by `make smoke` and the other *-smoke targets, by the benches and by the
tests; it never touches the project's params.yaml, dvc.lock or outputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from proc.git import git

ROOT = Path(__file__).resolve().parent.parent
# The pipeline and what `make run` needs to run it in containers.
SOURCES = (
    "stages",
    "runner",
    "proc",  # ops and sweep run git and dvc through it
    "serve",  # `make check-params` checks params.yaml's serve: section through serve.settings
    "sweep",
    "containers",  # the stage and serve image recipes (`make build`)
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    "Makefile",
    "docker-compose.yml",
    "Dockerfile.dvc-runner",
    ".dockerignore",
    "env",  # the lock's layers: dvc.yaml deps on env/stages.lock, the images install them
    "ops",  # `make run-local` checks the MLflow server with ops/remote.py first
    "pyproject.toml",
)
SMOKE_OVERRIDES: dict[str, Any] = {
    "data": {"source": "synthetic", "synthetic": {"train_per_class": 30, "test_per_class": 10}},
    # The `fast` recipe shrunk to a small net and a few epochs.
    "recipes": {"fast": {"model": "small", "epochs": 8, "batch_size": 64, "lr": 0.05}},
    "train": {"recipe": "fast", "compile": "off"},
    "evaluate": {"batch_size": 500},
}


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(base[key], value) if isinstance(value, dict) else value
    return out


@contextlib.contextmanager
def scratch(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A fresh folder `.smoke/<prefix>XXXX` in the project, removed on the way out (also on
    SIGTERM, turned into SystemExit(143) meanwhile, and Ctrl-C) unless `keep`. Under the project,
    not /tmp: the Docker executor mounts the project at the same path, so stage containers see it."""
    (ROOT / ".smoke").mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=ROOT / ".smoke"))
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield path
    finally:
        signal.signal(signal.SIGTERM, previous)
        if keep:
            print(f"sandbox kept at {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> None:
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def make_sandbox(dest: Path, overrides: dict) -> Path:
    """A fresh git+DVC repo at dest holding the pipeline with `overrides` applied to params."""
    from ruamel.yaml import YAML

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    yaml = YAML(typ="safe", pure=True)
    params = merge(yaml.load((dest / "params.yaml").read_text()), overrides)
    with open(dest / "params.yaml", "w") as f:
        yaml.dump(params, f)
    (dest / ".gitignore").write_text("/mlflow.db\n/mlflow.db-journal\n/mlartifacts/\n/checkpoints/\n")
    git_env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "smoke",
        "GIT_AUTHOR_EMAIL": "smoke@localhost",
        "GIT_COMMITTER_NAME": "smoke",
        "GIT_COMMITTER_EMAIL": "smoke@localhost",
    }
    git("init", "-q", cwd=dest)
    _run([sys.executable, "-m", "dvc", "init", "-q"], dest)
    git("add", "-A", cwd=dest)
    git("commit", "-q", "-m", "smoke sandbox", cwd=dest, env=git_env)
    return dest


def repro(sandbox: Path) -> dict:
    """`dvc repro` in the sandbox with its own MLflow store; return the register decision."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    _run([sys.executable, "-m", "dvc", "repro"], sandbox, env)
    return json.loads((sandbox / "reports" / "registry.json").read_text())
