import subprocess

from stages.lib import tracking


def test_local_store_lives_in_the_project(tmp_path):
    uri, artifacts = tracking.local_store(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert artifacts == (tmp_path.resolve() / "mlartifacts").as_uri()


def test_data_hashes_come_from_dvc_lock(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tracking.data_hashes(["data/raw"]) == {"data.data/raw": "unknown"}  # no dvc.lock yet
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  ingest:\n    cmd: x\n    outs:\n    - path: data/raw\n"
        "      md5: abc.dir\n  validate:\n    cmd: y\n"
    )
    assert tracking.data_hashes(["data/raw", "data/processed"]) == {
        "data.data/raw": "abc.dir",
        "data.data/processed": "unknown",
    }


def test_git_state_in_a_repo_outside_one_and_from_the_launcher(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPELINE_GIT_COMMIT", raising=False)
    monkeypatch.delenv("PIPELINE_GIT_DIRTY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.git_state() == {"git.commit": "unknown", "git.dirty": "unknown"}
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@localhost",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@localhost",
        "PATH": "/usr/bin:/bin",
    }
    (tmp_path / "f").write_text("1")
    for cmd in (["init", "-q"], ["add", "f"], ["commit", "-q", "-m", "c"]):
        subprocess.run(["git", *cmd], cwd=tmp_path, env=env, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert tracking.git_state() == {"git.commit": head, "git.dirty": "False"}
    (tmp_path / "f").write_text("2")
    assert tracking.git_state()["git.dirty"] == "True"
    monkeypatch.setenv("PIPELINE_GIT_COMMIT", "c0ffee")
    monkeypatch.setenv("PIPELINE_GIT_DIRTY", "False")
    assert tracking.git_state() == {"git.commit": "c0ffee", "git.dirty": "False"}


def test_git_state_without_git_installed(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPELINE_GIT_COMMIT", raising=False)
    monkeypatch.delenv("PIPELINE_GIT_DIRTY", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable on PATH
    assert tracking.git_state() == {"git.commit": "unknown", "git.dirty": "unknown"}


def test_provenance_of_an_in_process_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("PIPELINE_STAGE_EXECUTOR", "PIPELINE_IMAGE_ID", "PIPELINE_IMAGE_DIGEST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIPELINE_EXECUTOR", "local")
    tags = tracking.provenance(["data/raw"])
    assert (tags["executor"], tags["image.id"], tags["image.digest"]) == ("local", "none", "none")
    assert tags["env.lock_sha256"] == "missing" and tags["data.data/raw"] == "unknown" and "git.commit" in tags
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "stages.lock").write_bytes(b"abc")
    sha_of_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert tracking.provenance([])["env.lock_sha256"] == sha_of_abc


def test_provenance_of_a_stage_the_launcher_ran(tmp_path, monkeypatch):
    """Exactly the environment runner/launch.py gives a stage container (PIPELINE_EXECUTOR=local there)."""
    from runner import stage_spec

    monkeypatch.chdir(tmp_path)
    for name, value in stage_spec.stage_env({}, "sha256:ab", "stage@sha256:cd").items():
        monkeypatch.setenv(name, value)
    tags = tracking.provenance([])
    assert (tags["executor"], tags["image.id"], tags["image.digest"]) == ("docker", "sha256:ab", "stage@sha256:cd")
