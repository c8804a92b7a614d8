"""runner/guard.py in-process against a real Docker engine: what a dead runner left is cleared."""

import json
import os

import pytest

from runner import guard

pytestmark = pytest.mark.docker
GONE = "0123456789ab"  # no container has this id


@pytest.fixture
def client(base_image):
    import docker

    return docker.from_env()


def test_clear_drops_dead_runners_locks_and_stage_containers(tmp_path, client, base_image, capsys):
    tmp = tmp_path / ".dvc" / "tmp"
    tmp.mkdir(parents=True)
    entry = {"pid": 7, "cmd": f"dvc ({guard.MARK} {GONE}) repro"}
    (tmp / "rwlock").write_text(json.dumps({"write": {str(tmp_path / "models"): entry}}))
    labels = {"cifar100.workdir": str(tmp_path), "cifar100.runner": GONE, "cifar100.stage": "train"}
    orphan = client.containers.create(base_image, ["true"], labels=labels)
    other = client.containers.create(base_image, ["true"], labels={**labels, "cifar100.workdir": "/elsewhere"})
    try:
        assert guard.clear(tmp_path) == 0
        assert json.loads((tmp / "rwlock").read_text()) == {}
        assert orphan.id not in [c.id for c in client.containers.list(all=True)]
        other.reload()  # another project's container is not this project's business
        out = capsys.readouterr().out
        assert "removed stale DVC locks" in out and "removed stage container" in out
    finally:
        for ct in (orphan, other):
            try:
                ct.remove(force=True)
            except Exception:
                pass


def test_clear_leaves_a_live_runners_project_alone(tmp_path, client):
    fd = guard.acquire("f" * 64, ["dvc", "repro"], tmp_path / guard.LOCK)
    try:
        (tmp_path / ".dvc" / "tmp" / "rwlock").write_text(json.dumps({"write": {"x": {"pid": 7, "cmd": "dvc"}}}))
        assert guard.clear(tmp_path) == 0
        assert "write" in json.loads((tmp_path / ".dvc" / "tmp" / "rwlock").read_text())
    finally:
        os.close(fd)


def test_running_check_knows_a_live_container_from_a_gone_one(client, base_image):
    ct = client.containers.create(base_image, ["true"], labels={"cifar100.test": "guard"})
    try:
        running = guard.running_check(client)
        assert running(ct.id) and not running(GONE)  # created counts: it is about to run
    finally:
        ct.remove(force=True)


def test_guarded_dvc_runs_marked_after_clearing(tmp_path, client, monkeypatch, capsys):
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    stale = {"pid": 7, "cmd": f"dvc ({guard.MARK} {GONE}) repro"}
    (tmp_path / ".dvc" / "tmp").mkdir(exist_ok=True)
    (tmp_path / ".dvc" / "tmp" / "rwlock").write_text(json.dumps({"read": {str(tmp_path / "x"): [stale]}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(guard, "container_id", lambda: "e" * 64)  # as if in a runner container
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # run_dvc marks argv[0]; restore it after
    monkeypatch.setenv("PIPELINE_RUNNER_ID", "")
    assert guard.main(["dvc", "status"]) == 0
    assert sys.argv[0] == f"dvc ({guard.MARK} {'e' * 12})" and os.environ["PIPELINE_RUNNER_ID"] == "e" * 64
    assert json.loads((tmp_path / ".dvc" / "tmp" / "rwlock").read_text()) == {}
    assert guard.holder(tmp_path / guard.LOCK)["command"] == "dvc status"
