"""runner/guard.py without Docker: the project lock, stale rwlock entries, the secret file."""

import json
import os
import subprocess
import sys

import pytest

from runner import guard
from stages.lib.cli import PipelineError
from tests.conftest import ROOT

LIVE, DEAD = "a" * 64, "b" * 64


def _rwlock() -> dict:
    mine = {"pid": 7, "cmd": f"dvc ({guard.MARK} {DEAD[:12]}) repro"}
    other = {"pid": 7, "cmd": f"dvc ({guard.MARK} {LIVE[:12]}) repro"}
    host = {"pid": 4242, "cmd": "dvc repro"}
    return {
        "write": {"/p/models": mine, "/p/data/raw": host},
        "read": {"/p/data/processed": [mine, other], "/p/params.yaml": [mine]},
    }


def test_stale_entries_are_those_of_runners_that_are_gone():
    lock = _rwlock()
    stale = guard.stale_entries(lock, running=lambda cid: LIVE.startswith(cid))
    assert sorted((mode, path) for mode, path, _ in stale) == [
        ("read", "/p/data/processed"),
        ("read", "/p/params.yaml"),
        ("write", "/p/models"),
    ]
    guard.drop(lock, stale)
    assert (
        lock
        == {
            "write": {"/p/data/raw": {"pid": 4242, "cmd": "dvc repro"}},  # a host dvc's entry: DVC judges it
            "read": {"/p/data/processed": [{"pid": 7, "cmd": f"dvc ({guard.MARK} {LIVE[:12]}) repro"}]},
        }
    )


def test_clear_stale_rwlock_edits_dvcs_file(tmp_path, capsys):
    (tmp_path / "rwlock").write_text(json.dumps(_rwlock()))
    assert guard.clear_stale_rwlock(tmp_path, running=lambda cid: False) == 4
    assert json.loads((tmp_path / "rwlock").read_text()) == {
        "write": {"/p/data/raw": {"pid": 4242, "cmd": "dvc repro"}}
    }
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out  # one line, however many entries
    assert "removed stale DVC locks on /p/data/processed, /p/models, /p/params.yaml," in out
    assert f"left by runner container {LIVE[:12]}, {DEAD[:12]} (its container is gone)" in out
    assert guard.clear_stale_rwlock(tmp_path / "none", running=lambda cid: False) == 0


def test_a_second_runner_is_refused_naming_the_first(tmp_path):
    lock = tmp_path / ".dvc" / "tmp" / "runner.lock"
    fd = guard.acquire(LIVE, ["dvc", "repro"], lock)
    guard.mark(lock, stage="train", stage_container="c0ffee123456")
    # Another process (as another runner container would be) cannot take it.
    code = f"from runner import guard; guard.acquire('{DEAD}', ['dvc', 'repro'], __import__('pathlib').Path('{lock}'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 1 and "PipelineError" in done.stderr
    with pytest.raises(PipelineError) as err:
        guard.acquire(DEAD, ["dvc", "repro"], lock)  # a new open file description: refused here too
    assert f"runner container {LIVE[:12]}" in str(err.value) and "stage train" in str(err.value)
    assert f"docker stop {LIVE[:12]}" in str(err.value) and "\n" not in str(err.value)
    os.close(fd)  # what the kernel does when the runner dies
    os.close(guard.acquire(DEAD, ["dvc", "repro"], lock))
    assert guard.holder(lock)["container"] == DEAD
    assert "stage" not in guard.holder(lock)  # a fresh record: nothing of the previous run's stages


def test_the_record_names_the_run_and_what_was_said(tmp_path, monkeypatch):
    lock = tmp_path / "runner.lock"
    monkeypatch.setenv("PIPELINE_RUN", "cifar100-runner-0a1b2c3d")  # set by runner/compose-run.sh
    fd = guard.acquire(LIVE, ["dvc", "repro"], lock)
    guard.mark(lock, stage="train", said="")
    guard.mark(lock, said="train")
    guard.mark(lock, stage="")
    record = guard.holder(lock)
    assert record["run"] == "cifar100-runner-0a1b2c3d" and record["said"] == "train" and record["stage"] == ""
    os.close(fd)
    guard.mark(tmp_path / "absent.lock", stage="x")  # no record (a launcher on a host): nothing
    assert not (tmp_path / "absent.lock").exists()


def test_holder_of_a_missing_or_garbled_lock_is_empty(tmp_path):
    assert guard.holder(tmp_path / "none") == {}
    (tmp_path / "bad").write_text("[1, 2")
    assert guard.holder(tmp_path / "bad") == {}
    (tmp_path / "list").write_text("[1, 2]")
    assert guard.holder(tmp_path / "list") == {}


def test_secrets_file_goes_into_this_process_only(tmp_path, monkeypatch):
    secrets = tmp_path / "pipeline"
    secrets.write_text("MLFLOW_TRACKING_PASSWORD=pw=with=equals\n\nnot a pair\nAWS_ACCESS_KEY_ID=AK\n")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    guard.load_secrets(secrets)
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "pw=with=equals" and os.environ["AWS_ACCESS_KEY_ID"] == "AK"
    guard.load_secrets(tmp_path / "absent")  # no file (make smoke): nothing


def test_outside_a_container_the_guard_refuses_and_usage_is_checked(capsys, monkeypatch):
    monkeypatch.setattr(guard, "container_id", lambda: None)
    assert guard.main(["dvc", "repro"]) == 1
    assert "runs inside the dvc-runner container" in capsys.readouterr().err
    assert guard.main([]) == 2 and guard.main(["repro"]) == 2
