"""`make reproduce`: a version registered by a real `dvc repro` is rebuilt from its own record
(commit, settings, data by DVC hash) in a scratch worktree, and on CPU the weights are identical."""

import subprocess

import pytest
from mlflow import MlflowClient

from ops.reproduce import reproduce
from smoke.sandbox import merge
from stages.lib import fsio, model_card, tracking
from tests.e2e.conftest import E2E, dvc, sandbox

pytestmark = pytest.mark.slow

FAST = merge(E2E, {"recipes": {"fast": {"epochs": 1}}})  # three trainings: keep each short


def _worktrees(repo) -> list[str]:
    out = subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()


def test_a_registered_version_rebuilds_to_identical_weights(tmp_path):
    project = sandbox(tmp_path, FAST)
    dvc(project, "repro")
    registered = fsio.read_json(project / "reports" / "registry.json")
    sha = model_card.weights_sha256(project / "models")
    # A later commit changes the code: the rebuild must still use the version's own commit.
    (project / "stages" / "lib" / "loop.py").write_text("raise SystemExit('not this code')\n")
    subprocess.run(["git", "commit", "-qam", "later"], cwd=project, check=True, env=_git_env())
    result = reproduce(project, registered["model"], alias="champion", store=tracking.local_store(project)[0])
    assert result["verdict"] == "identical" and result["sha256"] == result["registered_sha256"] == sha
    assert result["version"] == registered["version"]
    assert len(_worktrees(project)) == 1 and not list((project / ".smoke").iterdir())  # scratch removed

    # As if trained elsewhere (another device): other weights, so the verdict is the metric difference.
    client = MlflowClient(tracking_uri=tracking.local_store(project)[0])
    client.set_model_version_tag(registered["model"], str(registered["version"]), "model_sha256", "0" * 64)
    client.set_model_version_tag(registered["model"], str(registered["version"]), "metric.test_top1", "0.5")
    result = reproduce(project, registered["model"], version=str(registered["version"]), store=client.tracking_uri)
    assert result["verdict"] == "different" and result["sha256"] == sha
    top1 = result["metrics"]["top1"]
    assert top1["registered"] == 0.5 and top1["difference"] == pytest.approx(top1["reproduced"] - 0.5)
    assert result["device"]["reproduced"]["device"] == "cpu" and "torch.version" in result["device"]["registered"]


def _git_env() -> dict:
    import os

    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
