"""`make hooks`: the pre-push hook pushes the DVC outputs of the pushed commits before git
sends them, against moto's S3 (with IAM auth) as the DVC remote and a bare git origin;
when the DVC push fails, the git push is refused with one line and origin is unchanged."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flows import hooks
from ops.common import Fail
from tests.integration.test_remote_dvc import DVC_YAML, STAGE, s3_env, sh
from tests.support.servers import git_origin, moto_s3  # noqa: F401  (fixtures)


def _project(root: Path, origin: Path, env: dict) -> Path:
    root.mkdir()
    (root / "make.py").write_text(STAGE)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text("make:\n  n: 3\n")
    (root / ".gitignore").write_text("/.env\n")
    sh(root, "git", "init", "-q", "-b", "main")
    sh(root, sys.executable, "-m", "dvc", "init", "-q")
    sh(root, sys.executable, "-m", "ops.dagshub_setup", env=env)  # the S3 remote, keys in config.local
    sh(root, sys.executable, "-m", "dvc", "repro", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-q", "-m", "first results")
    sh(root, "git", "remote", "add", "origin", str(origin))
    sh(root, sys.executable, "-m", "flows.hooks", "install")
    return root


def _origin_head(origin: Path) -> str:
    return sh(origin, "git", "rev-parse", "--verify", "-q", "main", check=False).stdout.strip()


def test_git_push_pushes_the_commits_dvc_outputs_first(tmp_path, git_origin, moto_s3):  # noqa: F811
    env = s3_env(moto_s3, "hooks-ok")
    project = _project(tmp_path / "p", git_origin, env)
    assert not moto_s3.keys("hooks-ok/")
    done = sh(project, "git", "push", "-q", "origin", "main", env=env)
    assert "pre-push: DVC outputs of 1 commit(s) on the remote" in done.stderr
    pushed = moto_s3.keys("hooks-ok/")
    assert len(pushed) == 4  # data/out's 3 files + its .dir listing
    assert _origin_head(git_origin) == sh(project, "git", "rev-parse", "HEAD").stdout.strip()
    # a second commit that changes no dvc.lock pushes nothing new, and git push goes through
    (project / "README").write_text("notes\n")
    sh(project, "git", "add", "README")
    sh(project, "git", "commit", "-q", "-m", "notes")
    sh(project, "git", "push", "-q", "origin", "main", env=env)
    assert len(moto_s3.keys("hooks-ok/")) == 4


def test_a_failed_dvc_push_refuses_the_git_push_in_one_line(tmp_path, git_origin, moto_s3):  # noqa: F811
    env = s3_env(moto_s3, "hooks-bad")
    project = _project(tmp_path / "p", git_origin, env)
    (project / ".dvc" / "config.local").unlink()  # keys from the environment only
    wrong = {**env, "AWS_SECRET_ACCESS_KEY": "wrong-secret-value-123", "AWS_MAX_ATTEMPTS": "1"}
    done = sh(project, "git", "push", "-q", "origin", "main", env=wrong, check=False)
    assert done.returncode != 0
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("pre-push:")]
    assert len(lines) == 1 and "push refused" in lines[0] and "--no-verify" in lines[0], done.stderr
    assert "wrong-secret-value-123" not in done.stderr
    assert _origin_head(git_origin) == ""  # origin got nothing
    assert not moto_s3.keys("hooks-bad/")


def test_install_keeps_a_foreign_hook_and_pushed_revs_reads_git_input(tmp_path, monkeypatch):
    sh(tmp_path, "git", "init", "-q", "-b", "main")
    hook = tmp_path / ".git" / "hooks" / "pre-push"
    hook.write_text("#!/bin/sh\nexit 0\n")
    with pytest.raises(Fail, match="not ours"):
        hooks.install(tmp_path)
    assert hooks.install(tmp_path, force=True) == hook and hooks.MARKER in hook.read_text()
    assert hooks.install(tmp_path) == hook  # ours: reinstalling is fine
    monkeypatch.chdir(tmp_path)
    assert hooks.pushed_revs(["refs/heads/x " + hooks.ZERO + " refs/heads/x abc", "garbage"], "origin") == []
    assert hooks.main(["bogus"]) == 1


def _local_project(root: Path, remote: Path | None) -> str:
    """The toy project with a local-folder DVC remote (or none); returns HEAD."""
    root.mkdir()
    (root / "make.py").write_text(STAGE)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text("make:\n  n: 2\n")
    sh(root, "git", "init", "-q", "-b", "main")
    sh(root, sys.executable, "-m", "dvc", "init", "-q")
    if remote is not None:
        sh(root, sys.executable, "-m", "dvc", "remote", "add", "-q", "-d", "here", str(remote))
    sh(root, sys.executable, "-m", "dvc", "repro", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-q", "-m", "results")
    return sh(root, "git", "rev-parse", "HEAD").stdout.strip()


def test_pre_push_in_process_pushes_then_refuses(tmp_path, monkeypatch, capsys):
    remote = tmp_path / "remote"
    head = _local_project(tmp_path / "p", remote)
    monkeypatch.chdir(tmp_path / "p")
    line = f"refs/heads/main {head} refs/heads/main {hooks.ZERO}"
    assert hooks.pushed_revs([line], "origin") == [head]
    hooks.pre_push("origin", [line])
    assert "on the remote (3 file(s) sent)" in capsys.readouterr().err
    assert len([p for p in remote.rglob("*") if p.is_file()]) == 3  # 2 files + the .dir listing
    remote.rename(tmp_path / "gone")
    remote.write_text("not a folder\n")  # the remote cannot take files now
    (tmp_path / "p" / "params.yaml").write_text("make:\n  n: 3\n")
    sh(tmp_path / "p", sys.executable, "-m", "dvc", "repro", "-q")
    sh(tmp_path / "p", "git", "commit", "-qam", "more")
    new = sh(tmp_path / "p", "git", "rev-parse", "HEAD").stdout.strip()
    with pytest.raises(Fail, match="push refused: the DVC outputs of 1 pushed commit"):
        hooks.pre_push("origin", [f"refs/heads/main {new} refs/heads/main {head}"])


def test_pre_push_without_a_dvc_remote_names_the_fix(tmp_path, monkeypatch):
    head = _local_project(tmp_path / "p", None)
    monkeypatch.chdir(tmp_path / "p")
    with pytest.raises(Fail, match="no default DVC remote"):
        hooks.pre_push("origin", [f"refs/heads/main {head} refs/heads/main {hooks.ZERO}"])
