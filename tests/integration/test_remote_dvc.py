"""`make dagshub/push/pull/git-sync` on a one-stage DVC project, against moto's S3 server
(with IAM auth, as DagsHub's S3 endpoint), a local-folder remote and a bare git origin.
The real pipeline goes through the same targets in tests/e2e/test_remote.py."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import ROOT, free_port, git_origin, moto_s3  # noqa: F401  (fixtures)

STAGE = """\
import json, pathlib, yaml
n = yaml.safe_load(open("params.yaml"))["make"]["n"]
out = pathlib.Path("data/out"); out.mkdir(parents=True, exist_ok=True)
for i in range(n):
    (out / f"{i}.bin").write_bytes(bytes([i]) * 1000)
pathlib.Path("reports").mkdir(exist_ok=True)
pathlib.Path("reports/m.json").write_text(json.dumps({"n": n}))
"""
DVC_YAML = """\
stages:
  make:
    cmd: python make.py
    deps: [make.py]
    params: [make.n]
    outs: [data/out]
    metrics:
      - reports/m.json:
          cache: false
"""


def sh(cwd: Path, *cmd: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        list(cmd), cwd=cwd, env={**base_env(), **(env or {})}, capture_output=True, text=True, timeout=300
    )
    if check and done.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def base_env() -> dict:
    """This venv first on PATH (the project installed in it), no outside settings, fast failures."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "DAGSHUB_", "DVC_REMOTE"))}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
            "AWS_MAX_ATTEMPTS": "1",
            "REMOTE_RETRY_DELAY_S": "0.2",
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@localhost",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@localhost",
        }
    )
    return env


def make(cwd: Path, target: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    # STAMP= : the venv is used as it is (an install from this scratch repo would repoint its editable install)
    return sh(cwd, "make", "--no-print-directory", f"VENV={ROOT / '.venv'}", "STAMP=", target, env=env, check=check)


def s3_env(s3, prefix: str, **override) -> dict:
    env = {
        "DVC_REMOTE_URL": f"s3://{s3.bucket}/{prefix}",
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_ACCESS_KEY_ID": s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
        "AWS_DEFAULT_REGION": s3.region,
    }
    return {**env, **override}


def write_dotenv(project: Path, env: dict) -> None:
    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))


def digests(root: Path) -> dict[str, str]:
    files = sorted(p for p in (root / "data").rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def toy_template(tmp_path_factory) -> Path:
    """A git+DVC project with one reproduced stage and the Makefile, built once per module."""
    root = tmp_path_factory.mktemp("toy") / "toy"
    root.mkdir()
    (root / "make.py").write_text(STAGE)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text("make:\n  n: 3\n")
    (root / ".gitignore").write_text("/.env\n")
    # make's install stamp hashes pyproject.toml and the lock's layers
    for name in (
        "Makefile",
        "pyproject.toml",
        "env/stages.lock",
        "env/serve.lock",
        "env/automation.lock",
        "env/dev.lock",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, root / name)
    sh(root, "git", "init", "-q", "-b", "main")
    sh(root, sys.executable, "-m", "dvc", "init", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-q", "-m", "toy")
    sh(root, sys.executable, "-m", "dvc", "repro", "-q")
    return root


@pytest.fixture
def toy(toy_template, tmp_path, git_origin) -> Path:  # noqa: F811
    """A private copy of the toy project whose origin is an empty bare repo."""
    root = tmp_path / "toy"
    shutil.copytree(toy_template, root, symlinks=True)
    sh(root, "git", "remote", "add", "origin", str(git_origin))
    return root


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def script(monkeypatch, capsys):
    """Run a `make` target's script in this process (what `make X` runs, minus the
    interpreter start-up): script(project, "push", env) -> Ran."""
    from ops import dagshub_setup, git_sync, remote
    from ops.common import main

    bodies = {
        "dagshub": (dagshub_setup._main, []),
        "push": (remote._main, ["push"]),
        "pull": (remote._main, ["pull"]),
        "git-sync": (git_sync._main, []),
    }

    def run_script(project: Path, target: str, env: dict | None = None, check: bool = True) -> Ran:
        for key in list(os.environ):
            if key.startswith(("MLFLOW_", "AWS_", "DAGSHUB_", "DVC_REMOTE", "REMOTE_")):
                monkeypatch.delenv(key)
        for key, value in {**base_env(), **(env or {})}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(project)
        capsys.readouterr()
        body, argv = bodies[target]
        code = main(target, body, argv)
        out = capsys.readouterr()
        if check and code:
            raise AssertionError(f"{target} failed:\n{out.out}\n{out.err}")
        return Ran(code, out.out, out.err)

    return run_script


def origin_files(origin: Path) -> list[str]:
    return sh(origin, "git", "ls-tree", "-r", "--name-only", "main").stdout.split()


def last_commit_files(origin: Path) -> list[str]:
    return sh(origin, "git", "show", "--name-only", "--format=", "main").stdout.split()


def pushed_count(done) -> int:
    (count,) = re.findall(r"^(\d+) files? pushed", done.stdout, re.M)
    return int(count)


def error_lines(done) -> list[str]:
    return [ln for ln in (done.stdout + done.stderr).splitlines() if ": error: " in ln]


def test_push_git_sync_then_a_fresh_clone_pulls_and_repro_is_a_no_op(toy, git_origin, moto_s3, tmp_path):  # noqa: F811
    env = s3_env(moto_s3, "roundtrip")
    write_dotenv(toy, env)  # credentials reach make and the scripts from .env alone
    make(toy, "dagshub")
    assert "secret_access_key" not in (toy / ".dvc" / "config").read_text()
    pushed = make(toy, "push")
    assert "push: done" in pushed.stdout
    assert any(k.startswith("roundtrip/files/md5/") for k in moto_s3.keys("roundtrip/"))
    assert any(k.startswith("roundtrip/runs/") for k in moto_s3.keys("roundtrip/"))  # the run-cache
    make(toy, "git-sync")
    assert {"dvc.lock", "reports/m.json", "data/.gitignore", ".dvc/config"} <= set(origin_files(git_origin))

    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(git_origin), str(clone))
    for name in ("Makefile", "pyproject.toml"):
        assert (clone / name).exists()
    write_dotenv(clone, env)
    make(clone, "dagshub")  # .dvc/config.local is never committed: each clone writes its own
    make(clone, "pull")
    assert digests(clone) == digests(toy)
    again = sh(clone, sys.executable, "-m", "dvc", "repro")
    assert "Running stage" not in again.stdout and "didn't change" in again.stdout


def test_push_to_the_default_local_folder_remote(script, toy, tmp_path):
    store = tmp_path / "store"
    sh(toy, sys.executable, "-m", "dvc", "remote", "add", "-d", "local", str(store))
    script(toy, "push")
    assert (store / "files" / "md5").is_dir() and (store / "runs").is_dir()
    shutil.rmtree(toy / ".dvc" / "cache")
    shutil.rmtree(toy / "data" / "out")
    script(toy, "pull")
    assert sorted(p.name for p in (toy / "data" / "out").iterdir()) == ["0.bin", "1.bin", "2.bin"]


@pytest.mark.parametrize("wrong", ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"])
def test_wrong_keys_fail_with_one_line_and_lose_nothing(script, toy, moto_s3, wrong):  # noqa: F811
    env = s3_env(moto_s3, f"wrong-{wrong}", **{wrong: "AKIAWRONGWRONGWRONG1"})
    script(toy, "dagshub", env)
    lock, before = (toy / "dvc.lock").read_text(), digests(toy)
    done = script(toy, "push", env, check=False)
    assert done.returncode != 0
    (line,) = error_lines(done)
    assert line.startswith("push: error: remote 's3'") and "rejected the credentials" in line
    assert "make dagshub" in line and "AWS_SECRET_ACCESS_KEY" in line
    assert "retrying" not in done.stderr  # a credentials error is not retried
    assert env["AWS_SECRET_ACCESS_KEY"] not in done.stdout + done.stderr
    assert moto_s3.keys(f"wrong-{wrong}/") == []
    assert (toy / "dvc.lock").read_text() == lock and digests(toy) == before
    pulled = script(toy, "pull", env, check=False)
    assert pulled.returncode != 0 and "rejected the credentials" in error_lines(pulled)[0]
    assert digests(toy) == before


def test_unreachable_remote_fails_after_bounded_retries(script, toy):
    env = {
        "DVC_REMOTE_URL": "s3://dvc/x",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ACCESS_KEY_ID": "AKIAX",
        "AWS_SECRET_ACCESS_KEY": "not-a-real-secret",
        "REMOTE_ATTEMPTS": "2",
    }
    script(toy, "dagshub", env)
    done = script(toy, "push", env, check=False)
    assert done.returncode != 0
    assert "push: remote unreachable (attempt 1 of 2); retrying" in done.stderr
    (line,) = error_lines(done)
    assert "unreachable after 2 attempts" in line and "Could not connect" in line and "make push" in line
    assert (toy / "data" / "out" / "0.bin").is_file()


def test_cut_off_push_blocks_git_sync_until_a_rerun_completes_it(script, toy, git_origin, moto_s3):  # noqa: F811
    env = s3_env(moto_s3, "cutoff")
    script(toy, "dagshub", env)
    first = pushed_count(script(toy, "push", env))
    objects = moto_s3.keys("cutoff/files/")
    # The state a push cut off midway leaves: some of a directory's files uploaded, its .dir
    # listing (which DVC uploads last, once all the files are there) missing.
    lost = [k for k in objects if k.endswith(".dir")] + [k for k in objects if not k.endswith(".dir")][:2]
    moto_s3.client().delete_objects(Bucket=moto_s3.bucket, Delete={"Objects": [{"Key": k} for k in lost]})
    refused = script(toy, "git-sync", env, check=False)
    assert refused.returncode != 0
    (line,) = error_lines(refused)
    assert "not on the DVC remote yet (data/out)" in line and "make push" in line
    assert sh(git_origin, "git", "branch", "--list").stdout == ""  # nothing reached origin
    rerun = script(toy, "push", env)
    assert 3 <= pushed_count(rerun) < first  # the lost files and the .dir, not everything again
    assert set(objects) <= set(moto_s3.keys("cutoff/files/"))
    script(toy, "git-sync", env)
    assert "dvc.lock" in origin_files(git_origin)


def test_git_sync_commits_only_the_pipelines_files(script, toy, git_origin, tmp_path):  # noqa: F811
    sh(toy, sys.executable, "-m", "dvc", "remote", "add", "-d", "local", str(tmp_path / "store"))
    script(toy, "push")
    script(toy, "git-sync")
    (toy / "notes.txt").write_text("scratch\n")  # untracked
    (toy / "README").write_text("staged, unrelated\n")
    sh(toy, "git", "add", "README")
    (toy / "params.yaml").write_text("make:\n  n: 4\n")
    sh(toy, sys.executable, "-m", "dvc", "repro", "-q")
    script(toy, "push")
    script(toy, "git-sync")
    assert sorted(last_commit_files(git_origin)) == ["dvc.lock", "params.yaml", "reports/m.json"]
    status = sh(toy, "git", "status", "--porcelain").stdout.splitlines()
    assert "A  README" in status and "?? notes.txt" in status  # left as they were
    assert ".env" not in origin_files(git_origin)
    again = script(toy, "git-sync")
    assert "nothing new to commit" in again.stdout


def test_git_sync_refuses_a_stale_pipeline_or_uncommitted_code(script, toy, git_origin, tmp_path):  # noqa: F811
    sh(toy, sys.executable, "-m", "dvc", "remote", "add", "-d", "local", str(tmp_path / "store"))
    script(toy, "push")
    (toy / "params.yaml").write_text("make:\n  n: 5\n")
    stale = script(toy, "git-sync", check=False)
    (line,) = error_lines(stale)
    assert "not up to date (changed: make)" in line and "dvc repro" in line
    (toy / "params.yaml").write_text("make:\n  n: 3\n")
    (toy / "make.py").write_text(STAGE + "# edited\n")
    sh(toy, sys.executable, "-m", "dvc", "repro", "-q")
    dirty = script(toy, "git-sync", check=False)
    (line,) = error_lines(dirty)
    assert "uncommitted changes in code dvc.lock records (make.py)" in line
    assert sh(git_origin, "git", "branch", "--list").stdout == ""


def test_pull_of_outputs_never_pushed_names_the_fix(script, toy, git_origin, moto_s3, tmp_path):  # noqa: F811
    env = s3_env(moto_s3, "never")
    script(toy, "dagshub", env)
    sh(toy, "git", "add", "-A", ".dvc/config", "dvc.lock", "reports", "data/.gitignore")
    sh(toy, "git", "commit", "-q", "-m", "results without data")
    sh(toy, "git", "push", "-q", "origin", "main")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(git_origin), str(clone))
    script(clone, "dagshub", env)
    done = script(clone, "pull", env, check=False)
    assert done.returncode != 0
    (line,) = error_lines(done)
    assert "not on remote 's3'" in line and "make push" in line
