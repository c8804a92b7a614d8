"""`python -m runner NAME ARGS...`: run one pipeline stage where PIPELINE_EXECUTOR says.

Every cmd in dvc.yaml goes through here, so a cmd (and so dvc.lock) is the same
whichever executor runs it. PIPELINE_EXECUTOR=local (default) runs the stage in
this process, under a GPU lease (and tethered to its launcher inside a stage
container); PIPELINE_EXECUTOR=docker hands the same argv to a sibling container
started from the stage image, which runs `python -m runner` again with the local
executor; PIPELINE_EXECUTOR=k8s runs it as a Kubernetes Job (runner/k8s.py). An
executor is a function argv -> exit status in EXECUTORS.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from runner import gpu_lease, k8s, launch, multinode, tether
from stages import __main__ as stages_entry
from stages.lib.cli import PipelineError


def run_local(argv: list[str]) -> int:
    """The stage in this process, on the GPUs leased to it (CUDA_VISIBLE_DEVICES)."""
    if os.environ.get("PIPELINE_TETHER"):  # in a stage container: secrets from stdin, and die with the runner
        tether.attach()
    try:
        with gpu_lease.local_stage(argv[0], os.environ):
            return stages_entry.run(argv[0], argv[1:])
    except PipelineError as exc:  # no lease to be had (bad PIPELINE_GPUS, busy GPUs past the wait)
        print(f"{argv[0]}: error: {exc}", file=sys.stderr)
        return 1


def run_docker(argv: list[str]) -> int:
    """The stage in its own container from the stage image (runner/launch.py)."""
    return launch.main(argv)


def run_k8s(argv: list[str]) -> int:
    """The stage as a Kubernetes Job from the stage image (runner/k8s.py)."""
    return k8s.main(argv)


EXECUTORS: dict[str, Callable[[list[str]], int]] = {"local": run_local, "docker": run_docker, "k8s": run_k8s}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in stages_entry.STAGES:
        print(stages_entry.usage("runner"), file=sys.stderr)
        return 2
    executor = os.environ.get("PIPELINE_EXECUTOR") or "local"
    if executor not in EXECUTORS:
        print(f"runner: PIPELINE_EXECUTOR must be one of {', '.join(EXECUTORS)}, got {executor!r}", file=sys.stderr)
        return 2
    problem = multinode.executor_problem(executor, argv)  # train.nodes > 1 needs the k8s executor
    if problem:
        print(f"{argv[0]}: error: {problem}", file=sys.stderr)
        return 1
    return EXECUTORS[executor](argv)


if __name__ == "__main__":
    raise SystemExit(main())
