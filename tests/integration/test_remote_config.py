"""`make dagshub`: the remote's URL into .dvc/config, its keys into .dvc/config.local only,
from the environment or .env, with one-line errors for what is missing."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from dvc.config import Config

from ops import dagshub_setup
from ops.common import Fail, main
from ops.settings import settings
from tests.support.servers import ROOT, ArgvWatch

TOKEN = "dh-0f9e8d7c6b5a4f3e2d1c"
MANAGED = ("DAGSHUB_", "DVC_REMOTE", "AWS_", "MLFLOW_")


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    for key in list(os.environ):
        if key.startswith(MANAGED):
            monkeypatch.delenv(key)
    monkeypatch.chdir(root)
    return root


def setup(capsys) -> tuple[int, str, str]:
    code = main("dagshub", dagshub_setup._main, [])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_dagshub_settings_from_dotenv(repo, capsys):
    (repo / ".env").write_text(f"# DagsHub\nDAGSHUB_OWNER=alice\nDAGSHUB_REPO=cifar\nexport DAGSHUB_TOKEN={TOKEN}\n")
    code, out, err = setup(capsys)
    assert code == 0, err
    shared = (repo / ".dvc" / "config").read_text()
    assert "s3://dvc" in shared and "https://dagshub.com/alice/cifar.s3" in shared and TOKEN not in shared
    assert "remote = dagshub" in shared
    local = repo / ".dvc" / "config.local"
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    conf = Config(str(repo / ".dvc"))
    assert conf["remote"]["dagshub"]["access_key_id"] == TOKEN == conf["remote"]["dagshub"]["secret_access_key"]
    assert TOKEN not in out + err
    ignored = subprocess.run(["git", "check-ignore", "-q", ".dvc/config.local"], cwd=repo)
    assert ignored.returncode == 0  # never committed


def test_s3_endpoint_settings_from_the_environment(repo, monkeypatch, capsys):
    env = {
        "DVC_REMOTE_URL": "s3://bucket/cifar",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t-s3cr3t-s3cr3t",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert setup(capsys)[0] == 0
    shared = Config(str(repo / ".dvc")).load_one("repo")
    assert shared["core"]["remote"] == "s3"
    assert shared["remote"]["s3"] == {
        "url": "s3://bucket/cifar",
        "endpointurl": "http://127.0.0.1:9000",
        "region": "eu-west-1",
    }
    local = Config(str(repo / ".dvc")).load_one("local")
    assert local["remote"]["s3"] == {"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cr3t-s3cr3t-s3cr3t"}


def test_keys_left_in_the_shared_config_are_removed(repo, monkeypatch, capsys):
    (repo / ".dvc" / "config").write_text(
        "['remote \"dagshub\"']\n    url = s3://dvc\n    access_key_id = leaked\n    secret_access_key = leaked\n"
    )
    for key, value in {"DAGSHUB_OWNER": "o", "DAGSHUB_REPO": "r", "DAGSHUB_TOKEN": TOKEN}.items():
        monkeypatch.setenv(key, value)
    code, out, _ = setup(capsys)
    assert code == 0 and "removed access_key_id, secret_access_key from .dvc/config" in out
    assert "leaked" not in (repo / ".dvc" / "config").read_text()


@pytest.mark.parametrize(
    "env, message",
    [
        ({"DAGSHUB_OWNER": "alice"}, "DAGSHUB_REPO, DAGSHUB_TOKEN not set"),
        ({}, "no remote configured: set DAGSHUB_OWNER, DAGSHUB_REPO and DAGSHUB_TOKEN"),
        ({"DVC_REMOTE_URL": "gs://bucket"}, "DVC_REMOTE_URL must be an s3:// URL"),
    ],
)
def test_incomplete_settings_fail_with_one_line_and_write_nothing(repo, monkeypatch, capsys, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before = (repo / ".dvc" / "config").read_text()
    code, _, err = setup(capsys)
    assert code == 1 and err.startswith("dagshub: error: ") and message in err and err.count("\n") == 1
    assert (repo / ".dvc" / "config").read_text() == before
    assert not (repo / ".dvc" / "config.local").exists()


def test_outside_a_dvc_project(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = setup(capsys)
    assert code == 1 and "is not a DVC project" in err


def test_make_dagshub_keeps_the_token_off_every_command_line(repo):
    """Through make: the token is in .env only; no process ever sees it in its argv."""
    (repo / ".env").write_text(f"DAGSHUB_OWNER=alice\nDAGSHUB_REPO=cifar\nDAGSHUB_TOKEN={TOKEN}\n")
    (repo / "Makefile").write_bytes((ROOT / "Makefile").read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith(MANAGED)}
    # STAMP= : the venv is used as it is (an install from this scratch repo would repoint its editable install)
    cmd = ["make", "--no-print-directory", f"VENV={ROOT / '.venv'}", "STAMP=", "dagshub"]
    with ArgvWatch(TOKEN) as watch:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.5)", TOKEN], timeout=60)
    assert watch.hits, "the watch must see a token that is on a command line"
    with ArgvWatch(TOKEN) as watch:
        done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert watch.seen > 0 and watch.hits == []
    assert Config(str(repo / ".dvc"))["remote"]["dagshub"]["secret_access_key"] == TOKEN


def test_settings_prefer_set_environment_values_over_dotenv(tmp_path):
    lines = "DVC_REMOTE_URL=from-file\nAWS_DEFAULT_REGION=from-file\nAWS_ENDPOINT_URL=\n# AWS_ACCESS_KEY_ID=commented\n"
    (tmp_path / ".env").write_text(lines + "export AWS_SESSION_TOKEN := spaced # note\nOTHER=not-a-remote-setting\n")
    got = settings(tmp_path, {"DVC_REMOTE_URL": "from-env", "AWS_DEFAULT_REGION": "", "UNRELATED": "x"})
    assert got == {"DVC_REMOTE_URL": "from-env", "AWS_DEFAULT_REGION": "from-file", "AWS_SESSION_TOKEN": "spaced"}


def test_a_bad_remote_setting_is_one_line_naming_it(tmp_path):
    (tmp_path / ".env").write_text("REMOTE_ATTEMPTS=many\n")
    with pytest.raises(
        Fail, match=r"^REMOTE_ATTEMPTS='many' in the environment or \.env: .*integer.*fix it or unset it$"
    ):
        settings(tmp_path, {})


def test_dagshub_settings_imply_its_mlflow_unless_mlflow_is_set(tmp_path):
    (tmp_path / ".env").write_text(f"DAGSHUB_OWNER=alice\nDAGSHUB_REPO=cifar\nDAGSHUB_TOKEN={TOKEN}\n")
    got = settings(tmp_path, {})
    assert got["MLFLOW_TRACKING_URI"] == "https://dagshub.com/alice/cifar.mlflow"
    assert (got["MLFLOW_TRACKING_USERNAME"], got["MLFLOW_TRACKING_PASSWORD"]) == ("alice", TOKEN)
    assert settings(tmp_path, {"DAGSHUB_USER": "bob"})["MLFLOW_TRACKING_USERNAME"] == "bob"
    own = settings(tmp_path, {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert own["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000" and "MLFLOW_TRACKING_PASSWORD" not in own


def _makefile_with(repo, recipe: str) -> None:
    """The project's Makefile plus `recipe`."""
    (repo / "Makefile").write_text((ROOT / "Makefile").read_text() + recipe)


def _show_env(repo, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", f"VENV={ROOT / '.venv'}", "STAMP=", "show-env"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_derives_dagshub_mlflow_settings_for_recipes(repo):
    """The Makefile's derivation, seen from a recipe's environment (values, not command lines)."""
    (repo / ".env").write_text(f"DAGSHUB_OWNER=alice\nDAGSHUB_REPO=cifar\nDAGSHUB_TOKEN={TOKEN}\n")
    show = "\nshow-env:\n\t@env | grep -E '^MLFLOW_TRACKING_(URI|USERNAME)=' | sort\n"
    _makefile_with(repo, show)
    env = {k: v for k, v in os.environ.items() if not k.startswith(MANAGED)}
    done = _show_env(repo, env)
    assert done.stdout.split() == [
        "MLFLOW_TRACKING_URI=https://dagshub.com/alice/cifar.mlflow",
        "MLFLOW_TRACKING_USERNAME=alice",
    ]


def test_make_prefers_a_shell_value_over_dotenv(repo):
    (repo / ".env").write_text("DAGSHUB_OWNER=alice\nDAGSHUB_REPO=cifar\n")
    show = "\nshow-env:\n\t@env | grep -E '^DAGSHUB_(OWNER|REPO)=' | sort\n"
    _makefile_with(repo, show)
    env = {k: v for k, v in os.environ.items() if not k.startswith(MANAGED)}
    env.update({"DAGSHUB_OWNER": "bob", "DAGSHUB_REPO": ""})  # empty counts as unset
    done = _show_env(repo, env)
    assert done.stdout.split() == ["DAGSHUB_OWNER=bob", "DAGSHUB_REPO=cifar"]
