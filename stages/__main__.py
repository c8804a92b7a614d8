"""`python -m stages NAME ARGS...`: run one pipeline stage, here or in its own container.

Every cmd in dvc.yaml goes through here, so a cmd (and so dvc.lock) is the same
whichever executor runs it: PIPELINE_EXECUTOR=local (default) runs the stage in
this process; PIPELINE_EXECUTOR=docker hands the same argv to a sibling
container started from the stage image.
"""

from __future__ import annotations

import importlib
import os
import sys

from stages.lib.cli import PipelineError

STAGES = ("ingest", "validate", "preprocess", "train", "evaluate", "profile", "register")
EXECUTORS = ("local", "docker")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in STAGES:
        print(f"usage: python -m stages {{{','.join(STAGES)}}} ARGS...", file=sys.stderr)
        return 2
    executor = os.environ.get("PIPELINE_EXECUTOR") or "local"
    if executor not in EXECUTORS:
        print(f"stages: PIPELINE_EXECUTOR must be one of {', '.join(EXECUTORS)}, got {executor!r}", file=sys.stderr)
        return 2
    if executor == "docker":
        from runner import launch

        return launch.main(argv)
    if os.environ.get("PIPELINE_TETHER"):  # in a stage container: secrets from stdin, and die with the runner
        from runner import tether

        tether.attach()
    from runner import gpu_lease

    try:
        with gpu_lease.local_stage(argv[0], os.environ):  # sets CUDA_VISIBLE_DEVICES to the leased GPUs
            return importlib.import_module(f"stages.{argv[0]}").main(argv[1:])
    except PipelineError as exc:
        print(f"{argv[0]}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
