"""`make promote EXP=<name>`: make one sweep experiment the committed state, then run the normal register gate.

Sweep experiments never move `champion`. Promoting one applies it to the
workspace (`dvc exp apply`: its params, dvc.lock and outputs), commits that,
and re-runs `register` outside sweep mode (`dvc repro --force --single-item
register`): the usual margin gate then decides whether its model, already a
registered version, becomes champion. The register decision is committed too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from proc.git import git
from stages.lib import fsio
from stages.lib.cli import PipelineError
from sweep import dvcq

COMMITTED = ("params.yaml", "dvc.lock")


def _commit(root: Path, paths: tuple[str, ...], message: str) -> bool:
    present = [p for p in paths if (root / p).exists()]
    git("add", "--", *present, cwd=root)
    if not git("diff", "--cached", "--name-only", "--", *present, cwd=root).strip():
        return False
    git("commit", "-q", "-m", message, "--", *present, cwd=root)
    return True


def promote(root: Path, name: str, environ: Mapping[str, str] | None = None, say: Callable = print) -> dict:
    """Apply, commit, register; the register decision (reports/registry.json)."""
    environ = {
        k: v for k, v in (os.environ if environ is None else environ).items() if not k.startswith("PIPELINE_SWEEP")
    }
    if name not in dvcq.show(root, "--all-commits"):
        raise PipelineError(f"no DVC experiment named {name!r}: see reports/sweep.md or `dvc exp show`")
    dvcq.dvc(root, "exp", "apply", name, env=environ)
    if _commit(root, COMMITTED, f"Promote sweep experiment {name}"):
        say(f"promote: committed {name}'s params.yaml and dvc.lock")
    dvcq.dvc(root, "repro", env=environ)  # restores anything apply left out; a no-op when all is there
    dvcq.dvc(root, "repro", "--force", "--single-item", "register", env=environ)
    decision = fsio.read_json(root / "reports" / "registry.json")
    _commit(root, ("dvc.lock", "reports/registry.json"), f"Register {name}'s model: {decision['reason']}")
    say(f"promote: {name} -> {decision['model']} v{decision['version']} {decision['aliases']} ({decision['reason']})")
    return decision
