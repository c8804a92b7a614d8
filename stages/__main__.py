"""`python -m stages NAME ARGS...`: run one pipeline stage in this process, nothing else.

Where a stage runs (this machine, its own container) is the runner's choice:
dvc.yaml's cmds go through `python -m runner NAME ARGS...` (runner/__main__.py),
which ends here, in-process, on whichever machine or container it picked.
"""

from __future__ import annotations

import importlib
import sys

from stages.lib.cli import PipelineError

STAGES = ("ingest", "validate", "preprocess", "train", "evaluate", "profile", "register")


def usage(prog: str) -> str:
    return f"usage: python -m {prog} {{{','.join(STAGES)}}} ARGS..."


def run(name: str, args: list[str]) -> int:
    """Stage `name`'s main(args) here; an expected failure is one line naming the stage, exit 1."""
    try:
        return importlib.import_module(f"stages.{name}").main(args)
    except PipelineError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in STAGES:
        print(usage("stages"), file=sys.stderr)
        return 2
    return run(argv[0], argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
