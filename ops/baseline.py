"""The committed baseline: `dvc.lock` and the metrics of a real CIFAR-100 run, kept in git.

    python -m ops.baseline check     # make check-baseline: one JSON line
    python -m ops.baseline refresh   # make baseline: rerun, then commit the lock and the reports

`check` says which stages no longer match the committed lock because something they depend on
changed (code, params, the lock of packages), as opposed to outputs that are merely missing, as on
a fresh clone where DVC's cache is empty; then, where a copy of the official archive is at hand
(CIFAR100_ARCHIVE, else $CIFAR100_DIR/cifar-100-python.tar.gz, else ../shared/cifar100/), it
reruns the data stages on it in a clean clone of HEAD and compares their output hashes with the
committed ones. Stale stages are a reason to refresh, not a failure: `check` exits 0.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ops.common import Fail, child_env, dvc, main
from proc.run import run
from stages.lib import params

DATA_STAGES = ("ingest", "validate", "preprocess")
ARCHIVE_NAME = "cifar-100-python.tar.gz"
# What DVC tracks in git for a run (the cache: false outs and metrics), beside dvc.lock.
COMMITTED = ("dvc.lock", "reports", ".gitignore", "data/.gitignore")


def stage_outs(root: Path) -> dict[str, list[str]]:
    """stage -> the paths it writes (outs and metrics), read from dvc.yaml."""
    stages = params.read_yaml(root / "dvc.yaml")["stages"]
    found: dict[str, list[str]] = {}
    for name, stage in stages.items():
        entries = [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]
        found[name] = [next(iter(e)) if isinstance(e, dict) else str(e) for e in entries]
    return found


def stale_stages(status: dict[str, Any], outs: dict[str, list[str]]) -> list[str]:
    """Stages whose deps, params or command changed, from `dvc status --json`, in dvc.yaml order.

    An out that is missing or not in the cache, and a dep that is another stage's missing out,
    is what a fresh clone looks like: not stale."""
    produced = {path for paths in outs.values() for path in paths}
    stale = []
    for stage in outs:
        for change in status.get(stage, []):
            if isinstance(change, str):  # "changed command", "always changed"
                stale.append(stage)
                break
            deps = change.get("changed deps", {})
            if any(not (state == "deleted" and path in produced) for path, state in deps.items()):
                stale.append(stage)
                break
    return stale


def default_archive(environ: dict[str, str], root: Path) -> Path | None:
    if environ.get("CIFAR100_ARCHIVE"):
        return Path(environ["CIFAR100_ARCHIVE"])
    folder = Path(environ.get("CIFAR100_DIR") or root.parent / "shared" / "cifar100")
    return folder / ARCHIVE_NAME if (folder / ARCHIVE_NAME).is_file() else None


def lock_outs(lock: dict[str, Any], stages: tuple[str, ...]) -> dict[str, str]:
    """ "stage:path" -> the md5 dvc.lock records for each out of `stages`."""
    return {
        f"{stage}:{out['path']}": out.get("md5", "")
        for stage in stages
        for out in lock.get("stages", {}).get(stage, {}).get("outs", [])
    }


def data_hashes_match(root: Path, archive: Path) -> tuple[bool, dict[str, Any]]:
    """Rerun the data stages on `archive` in a clean clone of HEAD; compare with its dvc.lock."""
    committed = params.read_yaml(root / "dvc.lock") if (root / "dvc.lock").is_file() else {}
    with tempfile.TemporaryDirectory(prefix="check-baseline-") as tmp:
        clone = Path(tmp) / "clone"
        done = run(["git", "clone", "--quiet", "--no-hardlinks", str(root), str(clone)], timeout=600)
        if done.returncode:
            raise Fail(f"git clone of {root} failed: {done.output.strip()[-300:]}")
        env = child_env({"CIFAR100_ARCHIVE": str(archive.resolve()), "PIPELINE_EXECUTOR": "local"})
        done = run(dvc("repro", DATA_STAGES[-1]), env=env, cwd=clone, timeout=1800)  # and the stages before it
        if done.returncode:
            raise Fail(f"the data stages failed on {archive}: {done.output.strip().splitlines()[-1:]}")
        fresh = params.read_yaml(clone / "dvc.lock")
    want, got = lock_outs(committed, DATA_STAGES), lock_outs(fresh, DATA_STAGES)
    differ = {key: {"committed": want.get(key), "here": value} for key, value in got.items() if want.get(key) != value}
    return bool(want) and not differ, differ


def check(root: Path, environ: dict[str, str]) -> dict[str, Any]:
    outs = stage_outs(root)
    if not (root / "dvc.lock").is_file():  # nothing to compare with: every stage is "stale"
        reason = "no dvc.lock committed: run `make baseline` to make one"
        return {"stages": len(outs), "stale": list(outs), "data_hash_matches_shared_copy": None, "reason": reason}
    done = run(dvc("status", "--json"), env=child_env({}), cwd=root, timeout=600)
    if done.returncode:
        raise Fail(f"dvc status failed: {done.output.strip()[-300:]}")
    status = json.loads(done.output.strip().splitlines()[-1] or "{}")
    report: dict[str, Any] = {"stages": len(outs), "stale": stale_stages(status, outs)}
    archive = default_archive(environ, root)
    if archive is None:
        report["data_hash_matches_shared_copy"] = None
        report["reason"] = "no copy of CIFAR-100 here: set CIFAR100_ARCHIVE to one"
        return report
    matches, differ = data_hashes_match(root, archive)
    report["data_hash_matches_shared_copy"] = matches
    if differ:
        report["differ"] = differ
    return report


def refresh(root: Path) -> str:
    """`dvc repro` with this checkout's settings, then commit the lock and the reports DVC keeps in git."""
    done = run(dvc("repro"), env=child_env({}), cwd=root, echo=True, timeout=7 * 24 * 3600)
    if done.returncode:
        raise Fail("dvc repro failed: the baseline is unchanged (see the output above)")
    paths = [p for p in COMMITTED if (root / p).exists()]
    run(["git", "add", "--", *paths], cwd=root)
    metrics = params.read_yaml(root / "reports" / "metrics.json")
    top1 = metrics.get("test", {}).get("top1")
    message = f"Baseline: dvc.lock and reports from a full run (test top-1 {top1})"
    done = run(["git", "commit", "--quiet", "-m", message, "--", *paths], cwd=root)
    if done.returncode:
        raise Fail(f"git commit failed: {done.output.strip()[-300:]}")
    return message


def _body(argv: list[str]) -> None:
    what = argv[0] if argv else "check"
    root = Path.cwd()
    if what == "check":
        print(json.dumps(check(root, dict(os.environ))))
    elif what == "refresh":
        print(refresh(root))
    else:
        raise Fail(f"unknown command {what!r}: use check or refresh")


if __name__ == "__main__":
    sys.exit(main("baseline", _body))
