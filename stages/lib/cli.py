"""Shared entry-point plumbing: argument parsing and clean, one-line failures."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


class PipelineError(Exception):
    """An expected failure (bad input, failed check); shown as one line, no traceback."""


def parser(description: str, *paths: str) -> argparse.ArgumentParser:
    """Every stage takes its file paths from dvc.yaml's cmd, never from constants."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--params", required=True, help="params file (params.yaml)")
    for name in paths:
        ap.add_argument(f"--{name}", required=True)
    return ap


def require(*paths: str | Path, producer: str) -> None:
    """Fail in one line when an input that another stage writes is missing."""
    for path in map(Path, paths):
        if not path.is_file():
            raise PipelineError(f"{path}: file not found (run the {producer} stage)")


def run(stage: str, body: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> int:
    """Run a stage's body; an expected failure exits 1 with `stage: message`."""
    try:
        body(argv)
    except PipelineError as exc:
        print(f"{stage}: error: {exc}", file=sys.stderr)
        return 1
    return 0
