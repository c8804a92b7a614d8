"""ops/reproduce.py: a record that lacks what a rebuild needs ends in one line saying what."""

import hashlib
import subprocess

import pytest
from mlflow import MlflowClient

from ops import reproduce
from stages.lib import fsio, lineage, tracking
from stages.lib.cli import PipelineError

NAME = "cifar100-classifier"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One sqlite store for the module: creating one costs seconds."""
    root = tmp_path_factory.mktemp("store")
    c = MlflowClient(tracking_uri=tracking.local_store(root)[0])
    c.create_registered_model(NAME)
    c.create_experiment("e", artifact_location=(root / "art").as_uri())
    return c


def _version(client, tmp_path, tags: dict) -> object:
    run = client.create_run(client.get_experiment_by_name("e").experiment_id)
    return client.create_model_version(NAME, f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=tags)


def test_an_unknown_version_or_alias_is_named(client):
    with pytest.raises(PipelineError, match="^registry has no version 99 of model 'cifar100-classifier'$"):
        reproduce.find_version(client, NAME, "99", None)
    with pytest.raises(PipelineError, match="^registry has no alias 'champion' of model"):
        reproduce.find_version(client, NAME, None, "champion")


def test_a_version_without_commit_or_weights_hash_is_refused(client, tmp_path):
    mv = _version(client, tmp_path, {"model_sha256": "ab"})
    with pytest.raises(PipelineError, match=f"v{mv.version} records no git commit or weights hash"):
        reproduce.read_record(client, mv, tmp_path)


def test_a_version_without_lineage_artifacts_is_refused(client, tmp_path):
    mv = _version(client, tmp_path, {"model_sha256": "ab", "git.commit": "c" * 40})
    with pytest.raises(PipelineError) as exc:
        reproduce.read_record(client, mv, tmp_path)
    assert str(exc.value) == (
        f"{NAME} v{mv.version} has no lineage/ card and dvc.lock in its run: registered before `make reproduce` "
        "existed, or outside `dvc repro`; cannot rebuild it"
    )


def _lock(tree, text: str) -> dict:
    (tree / "stages").mkdir(parents=True, exist_ok=True)
    (tree / "stages" / "train.py").write_text(text)
    md5 = hashlib.md5(b"print('trained')\n").hexdigest()
    return {
        "stages": {
            "preprocess": {"deps": [], "outs": [{"path": "data/processed", "md5": "x.dir"}]},
            "train": {"deps": [{"path": "stages/train.py", "md5": md5}, {"path": "data/processed", "md5": "x.dir"}]},
        }
    }


def test_code_that_is_the_commits_passes(tmp_path):
    reproduce.check_code(_lock(tmp_path, "print('trained')\n"), tmp_path, "m v1", "c" * 40)


def test_code_that_differs_from_the_commit_is_named(tmp_path):
    lock = _lock(tmp_path, "print('edited')\n")
    with pytest.raises(PipelineError) as exc:
        reproduce.check_code(lock, tmp_path, "m v1", "c" * 40)
    assert str(exc.value) == (
        "m v1 was trained with a stages/train.py that is not the one in commit cccccccccccc "
        "(uncommitted changes?): its code is not in git; cannot rebuild it"
    )


def test_data_neither_cached_nor_on_a_remote_is_named(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    lock = {
        "schema": "2.0",
        "stages": {
            "preprocess": {
                "cmd": "true",
                "outs": [{"path": "data/processed", "md5": "0" * 32 + ".dir", "hash": "md5"}],
            },
            "train": {"cmd": "true", "deps": [{"path": "data/processed", "md5": "0" * 32 + ".dir", "hash": "md5"}]},
        },
    }
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  preprocess:\n    cmd: 'true'\n    outs: [data/processed]\n"
        "  train:\n    cmd: 'true'\n    deps: [data/processed]\n"
    )
    fsio.write_json(tmp_path / lineage.LOCK, lock)  # JSON is YAML
    with pytest.raises(PipelineError, match="^data/processed by their recorded hashes are neither in the local cache"):
        reproduce.restore_inputs(tmp_path, lock, "train", reproduce._env())


def test_a_commit_missing_from_the_repository_is_named(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    record = {"commit": "f" * 40, "label": "m v1"}
    with pytest.raises(PipelineError) as exc:
        reproduce.rebuild(tmp_path, record, tmp_path / "tree", reproduce._env())
    assert str(exc.value) == (
        f"m v1 was trained at commit {'f' * 40}, which is not in the git repository at {tmp_path}: "
        "fetch it (git fetch) and rerun"
    )
    assert not (tmp_path / "tree").exists()
