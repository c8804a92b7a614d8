"""`make reproduce MODEL=... VERSION=n` (or ALIAS=champion): rebuild a registered version
from its own record and say whether the same weights come out.

The record (stages/lib/lineage.py): the version's tags (git.commit, model_sha256) and its
run's `lineage/` artifacts (the model card with the settings, the run's dvc.lock). In a
scratch `git worktree` of that commit: the settings become params.yaml, the dvc.lock goes
in, the code files it hashes are checked against the commit, the train stage's input data
come back by their DVC hashes (the local cache, else the remote), and `dvc repro` reruns
train (forced, no run-cache). Prints one JSON line: `"verdict": "identical"` when the new
weights' sha256 is the registered one, else "different" with the test-metric difference
(evaluate rerun) and both devices, since bit-identity across devices cannot be had.
A record lacking what is needed ends in one line saying what. The scratch is removed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proc.git import git, succeeds
from stages.lib import cli, fsio, lineage, model_card, params
from stages.lib.cli import PipelineError

SCRATCH = ".smoke"  # git- and dvc-ignored scratch folder of the project
DEVICE_TAGS = ("device", "device.name", "torch.version")


def _client(project: Path, store: str | None = None):
    """An MLflow client on `store`, else the pipeline's: MLFLOW_TRACKING_URI or the project's local one."""
    from mlflow import MlflowClient

    from stages.lib import tracking

    uri = store or os.environ.get("MLFLOW_TRACKING_URI") or tracking.local_store(project)[0]
    if uri.startswith(("http://", "https://")):
        tracking.check_server(uri)
    return MlflowClient(tracking_uri=uri)


def find_version(client, name: str, version: str | None, alias: str | None):
    from mlflow.exceptions import MlflowException

    try:
        if alias:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, str(version))
    except MlflowException:
        which = f"alias {alias!r}" if alias else f"version {version}"
        raise PipelineError(f"registry has no {which} of model {name!r}") from None


def read_record(client, mv, dest: Path) -> dict:
    """The version's commit, weights hash, card and dvc.lock; one line naming what is missing."""
    from mlflow.exceptions import MlflowException

    label = f"{mv.name} v{mv.version}"
    commit, sha = mv.tags.get("git.commit", "unknown"), mv.tags.get("model_sha256")
    if commit == "unknown" or not sha:
        raise PipelineError(f"{label} records no git commit or weights hash (tags git.commit, model_sha256)")
    try:
        local = Path(client.download_artifacts(mv.run_id, lineage.ARTIFACT_DIR, str(dest)))
    except (MlflowException, OSError):
        local = dest / "missing"
    card_file, lock_file = local / model_card.CARD, local / lineage.LOCK
    if not (card_file.is_file() and lock_file.is_file()):
        raise PipelineError(
            f"{label} has no {lineage.ARTIFACT_DIR}/ card and dvc.lock in its run: registered "
            "before `make reproduce` existed, or outside `dvc repro`; cannot rebuild it"
        )
    card = model_card.from_dict(fsio.read_json(card_file), f"{label} {lineage.ARTIFACT_DIR}/{model_card.CARD}")
    run = client.get_run(mv.run_id)
    device = {k: run.data.tags.get(k, "unknown") for k in DEVICE_TAGS}
    metrics = {k[len("metric.test_") :]: float(v) for k, v in mv.tags.items() if k.startswith("metric.test_")}
    return {
        "label": label,
        "commit": commit,
        "sha256": sha,
        "card": card,
        "lock": params.read_yaml(lock_file),
        "lock_file": lock_file,
        "device": device,
        "metrics": metrics,
    }


def _md5(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def check_code(lock: dict, tree: Path, label: str, commit: str) -> None:
    """Every source file the record's stages hashed (not a stage's output) must be the commit's."""
    outs = {o["path"] for st in lock.get("stages", {}).values() for o in st.get("outs", [])}
    for stage in lock.get("stages", {}).values():
        for dep in stage.get("deps", []):
            path = tree / dep["path"]
            if dep["path"] in outs or dep.get("md5", "").endswith(".dir"):
                continue
            if not path.is_file() or _md5(path) != dep.get("md5"):
                raise PipelineError(
                    f"{label} was trained with a {dep['path']} that is not the one in commit "
                    f"{commit[:12]} (uncommitted changes?): its code is not in git; cannot rebuild it"
                )


def _dvc(tree: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=tree, env=env, capture_output=True, text=True, timeout=3600
    )


def restore_inputs(tree: Path, lock: dict, stage: str, env: dict) -> None:
    """The stage's data deps by their recorded hashes: from the shared cache, else pulled from the remote."""
    outs = {o["path"] for st in lock["stages"].values() for o in st.get("outs", [])}
    targets = [d["path"] for d in lock["stages"][stage].get("deps", []) if d["path"] in outs]
    if targets and _dvc(tree, "checkout", *targets, env=env).returncode:
        done = _dvc(tree, "pull", *targets, env=env)
        if done.returncode:
            why = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise PipelineError(
                f"{', '.join(targets)} by their recorded hashes are neither in the local cache nor on the remote: {why}"
            )


def rebuild(project: Path, record: dict, tree: Path, env: dict) -> dict:
    """Train (and, if the weights differ, evaluate) again in the scratch worktree; the verdict."""
    from ruamel.yaml import YAML

    commit = f"{record['commit']}^{{commit}}"
    if not succeeds("cat-file", "-e", commit, cwd=project):
        raise PipelineError(
            f"{record['label']} was trained at commit {record['commit']}, which is not in the git "
            f"repository at {project}: fetch it (git fetch) and rerun"
        )
    git("worktree", "add", "--detach", "-q", str(tree), record["commit"], cwd=project)
    check_code(record["lock"], tree, record["label"], record["commit"])
    with open(tree / "params.yaml", "w") as f:
        YAML(typ="safe", pure=True).dump(params.as_dict(record["card"].settings), f)
    shutil.copy2(record["lock_file"], tree / lineage.LOCK)
    local = project / ".dvc" / "config.local"
    if local.is_file():  # the remote's credentials, if any
        shutil.copy2(local, tree / ".dvc" / "config.local")
    cache = _dvc(project, "cache", "dir", env=env).stdout.strip() or str(project / ".dvc" / "cache")
    _dvc(tree, "config", "--local", "cache.dir", cache, env=env)
    restore_inputs(tree, record["lock"], "train", env)
    _repro(tree, "train", env)
    sha = model_card.weights_sha256(tree / "models")
    verdict: dict[str, object] = {"verdict": "identical" if sha == record["sha256"] else "different", "sha256": sha}
    if sha != record["sha256"]:
        _repro(tree, "evaluate", env)
        new = fsio.read_json(tree / "reports" / "metrics.json")["test"]
        verdict["metrics"] = {
            k: {"registered": v, "reproduced": new[k], "difference": new[k] - v}
            for k, v in record["metrics"].items()
            if k in new
        }
        verdict["device"] = {"registered": record["device"], "reproduced": _device_now(tree)}
    return verdict


def _repro(tree: Path, stage: str, env: dict) -> None:
    done = _dvc(tree, "repro", "--single-item", "--force", "--no-run-cache", stage, env=env)
    if done.returncode:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise PipelineError(f"dvc repro {stage} failed in the scratch worktree {tree}:\n{tail}")


def _device_now(tree: Path) -> dict:
    """Device tags of the run the rebuild's train logged to the scratch's own store."""
    from mlflow import MlflowClient

    from stages.lib import tracking

    client = MlflowClient(tracking_uri=tracking.local_store(tree)[0])
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, order_by=["attributes.start_time DESC"], max_results=1) if ids else []
    return {k: runs[0].data.tags.get(k, "unknown") for k in DEVICE_TAGS} if runs else {}


def _env() -> dict:
    """The stages' environment in the scratch: its own MLflow store, the venv's tools first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PIPELINE_EXECUTOR", "local")
    return env


def reproduce(
    project: Path,
    name: str,
    version: str | None = None,
    alias: str | None = None,
    keep: bool = False,
    store: str | None = None,
) -> dict:
    """Rebuild version (or alias) of `name` registered in `store` (default: the pipeline's) from git at project."""
    began = time.perf_counter()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one JSON line, no progress bars
    client = _client(project, store)
    mv = find_version(client, name, version, alias)
    (project / SCRATCH).mkdir(exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"reproduce-v{mv.version}-", dir=project / SCRATCH))
    tree = scratch / "tree"
    try:
        record = read_record(client, mv, scratch)
        result = {
            "model": name,
            "version": int(mv.version),
            "commit": record["commit"],
            "registered_sha256": record["sha256"],
        }
        result.update(rebuild(project, record, tree, _env()))
    finally:
        if not keep:
            if tree.exists():
                git("worktree", "remove", "--force", str(tree), cwd=project, check=False)
            shutil.rmtree(scratch, ignore_errors=True)
            git("worktree", "prune", cwd=project, check=False)
    result["seconds"] = round(time.perf_counter() - began, 1)
    return result


def _main(argv) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="registered model name (params.yaml register.model_name)")
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", help="version number")
    which.add_argument("--alias", help="alias, e.g. champion")
    ap.add_argument("--project", type=Path, default=Path.cwd(), help="the git+DVC project (default: here)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch worktree for inspection")
    args = ap.parse_args(argv)
    print(json.dumps(reproduce(args.project.resolve(), args.model, args.version, args.alias, args.keep)))


def main(argv=None) -> int:
    return cli.run("reproduce", _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
