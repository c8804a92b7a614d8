"""The sweep's guards: the grid checked before anything is queued, one sweep at a time per project,
unique ids, Ctrl-C, a failed point's reason, a lost experiment's register refused."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from stages.lib import locks, sweepalive
from stages.lib.cli import PipelineError
from sweep import __main__ as cli
from sweep import grid, guard, report, run
from sweep.state import Sweep

REPO = Path(__file__).parents[2]
FAST = ["train.recipe=fast"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copyfile(REPO / name, tmp_path / name)
    return tmp_path


def test_a_good_grid_gives_its_points(project):
    points = grid.check(project, ["recipes.fast.lr=0.2,0.4", "recipes.fast.label_smoothing=0.1,0.2"], FAST)
    assert len(points) == 4 and points[0] == [
        "train.recipe=fast",
        "recipes.fast.lr=0.2",
        "recipes.fast.label_smoothing=0.1",
    ]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["recipes.fast.lr=0.2,0.20"], "are the same experiment: drop the repeated value"),
        (["recipes.resnet18.lr=0.2,0.4"], "sweep key recipes.resnet18.lr is read by no stage with train.recipe=fast"),
        (["serve.top_k=3,4"], "sweep key serve.top_k is read by no stage"),
        (["recipes.fast.lr=abc"], "sweep point train.recipe=fast recipes.fast.lr=abc: recipes.fast.lr must be float"),
        (["recipes.fast.lr=-1,0.2"], "recipes.fast.lr=-1: recipes.fast.lr must be > 0, got -1"),
        (["recipes.fast.epochs=1.5"], "recipes.fast.epochs must be int, got 1.5"),
        (["recipes.fast.lrr=1"], "Could not override 'recipes.fast.lrr'. (no such key in params.yaml)"),
        (["+foo.bar=1,2"], "unknown key foo"),
        (["lr"], "sweep grid item 'lr' is not KEY=VALUES"),
    ],
)
def test_a_bad_grid_is_refused_in_one_line(project, items, message):
    with pytest.raises(PipelineError, match=None) as err:
        grid.check(project, items, FAST)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_refused_sweep_queues_nothing_and_opens_no_run(project, monkeypatch):
    monkeypatch.setattr(run.mlruns, "open_parent", lambda *a: pytest.fail("an MLflow run was opened"))
    monkeypatch.setattr(run.dvcq, "status", lambda *a: pytest.fail("the queue was asked"))
    with pytest.raises(PipelineError, match="read by no stage"):
        run.run(project, ["recipes.resnet18.lr=0.2"], FAST, 1, {}, say=lambda t: None)
    fd = guard.hold(project, "sweep-other")  # a second sweep is running
    try:
        with pytest.raises(PipelineError, match=r"another sweep runs in .* \(pid \d+ sweep sweep-other\)"):
            run.run(project, ["recipes.fast.lr=0.2"], FAST, 1, {}, say=lambda t: None)
    finally:
        os.close(fd)


def test_sweep_ids_started_in_one_second_differ():
    assert len({run.new_id() for _ in range(20)}) == 20


def test_the_sweep_lock_admits_one_sweep(tmp_path):
    fd = guard.hold(tmp_path, "sweep-a")
    with pytest.raises(PipelineError, match="another sweep runs in .*sweep-a.*: wait for it to end"):
        guard.hold(tmp_path, "sweep-b")
    os.close(fd)
    os.close(guard.hold(tmp_path, "sweep-b"))


def test_register_of_a_lost_experiment_is_refused(tmp_path):
    env = {"PIPELINE_SWEEP_ID": "sweep-a", "DVC_ROOT": str(tmp_path), "DVC_EXP_NAME": "sweep-a-1"}
    (tmp_path / ".dvc" / "tmp").mkdir(parents=True)
    with pytest.raises(PipelineError, match="sweep sweep-a is gone \\(its driver stopped\\)"):
        sweepalive.check_wanted(env)
    fd = guard.hold(tmp_path, "sweep-a")
    try:
        sweepalive.check_wanted(env)  # wanted
        with pytest.raises(PipelineError, match="another sweep runs now"):
            sweepalive.check_wanted({**env, "PIPELINE_SWEEP_ID": "sweep-b"})
        sweepalive.dropped_path(tmp_path, "sweep-a-1").parent.mkdir()
        sweepalive.dropped_path(tmp_path, "sweep-a-1").write_text("dropped by its sweep: its queue worker died\n")
        with pytest.raises(PipelineError, match="dropped experiment sweep-a-1 \\(dropped by its sweep: its queue"):
            sweepalive.check_wanted(env)
    finally:
        os.close(fd)
    sweepalive.check_wanted({"DVC_ROOT": str(tmp_path)})  # not a sweep: nothing to check


def test_a_failed_points_reason_is_its_stage_error():
    log = "Running stage 'train':\n> python -m runner train\ntrain: error: recipes.fast.lr must be > 0, got -1\n"
    log += "ERROR: failed to reproduce 'train'\n"
    assert report.reason(log) == "train: error: recipes.fast.lr must be > 0, got -1"
    assert report.reason("ERROR: failed to reproduce 'train': oops\n") == "ERROR: failed to reproduce 'train': oops"
    assert report.reason("") == "no error line in its log"


def test_ctrl_c_is_one_line_and_130(monkeypatch, capsys, tmp_path):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "run", interrupted)
    assert cli.main(["run", "--root", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err == "sweep: interrupted: its experiments stopped, its MLflow parent run ended as KILLED\n"


def test_an_interrupted_or_dead_sweeps_parent_run_ends_killed(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("x", artifact_location=(tmp_path / "a").as_uri())
    sw = Sweep(tmp_path, "sweep-a", [], [], 1, tracking_uri=uri, parent_run=client.create_run(exp).info.run_id)
    guard.interrupted(sw)
    assert client.get_run(sw.parent_run).info.status == "KILLED"
    dead = client.create_run(exp).info.run_id  # a sweep whose driver was SIGKILLed
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "sweep.json").write_text(f'{{"parent_run": "{dead}", "tracking_uri": "{uri}"}}')
    left = {"sweep-a-1": "Running", "sweep-a-2": "Queued", "mine": "Queued", "sweep-z-1": "Success"}
    dropped: list = []
    monkeypatch.setattr(guard.dvcq, "status", lambda root: left)
    monkeypatch.setattr(guard.dvcq, "dvc", lambda root, *args, check=True: dropped.append(args))
    monkeypatch.setattr(guard.lost, "drop", lambda root, names, why: dropped.append(tuple(names)))
    said: list[str] = []
    guard.clear_leftovers(tmp_path, Path("reports/sweep.json"), said.append)
    assert client.get_run(dead).info.status == "KILLED"
    assert dropped == [("queue", "remove", "sweep-a-2"), ("sweep-a-1",)]  # not the user's own `mine`
    assert said == [
        "sweep: cleared what a dead sweep left: 1 running experiment(s) killed, 1 queued removed (sweep-a-1, sweep-a-2)"
    ]
    assert locks.holder(tmp_path / "nothing") == "?"


def test_a_dead_worker_fails_its_point_and_the_queued_ones_get_a_worker(monkeypatch):
    sequence = iter(
        [
            {"s-1": "Running", "s-2": "Queued"},
            {"s-1": "Failed", "s-2": "Running"},
            {"s-1": "Failed", "s-2": "Success"},
        ]
    )
    dropped, starts, said = [], [], []
    monkeypatch.setattr(run.dvcq, "status", lambda root: next(sequence))
    monkeypatch.setattr(run.dvcq, "start", lambda root, jobs, env: starts.append(jobs))
    monkeypatch.setattr(run.mlruns, "epochs", lambda sw: {})
    monkeypatch.setattr(run.lost.Watch, "lost", lambda self, root, names, now: [n for n in names if n == "s-1"])
    monkeypatch.setattr(run.lost, "drop", lambda root, names: dropped.append(names))
    sw = Sweep(Path("."), "s", ["a=1,2"], [], 1, names=["s-1", "s-2"])
    run.wait(sw, {}, said.append, poll_s=0.01, timeout_s=60)
    assert dropped == [["s-1"]] and starts == [1]  # a worker for s-2 at once, not after RESTART_AFTER_S
    assert said[0] == "sweep: experiment s-1 FAILED: its queue worker died (killed? out of memory?): experiment dropped"
    assert sw.states == {"s-1": "Failed", "s-2": "Success"} and "s-1" in sw.reasons


def test_success_is_said_only_of_results_dvc_has(monkeypatch):
    shown = {"s-1": {"params": {}, "metrics": {"test.top1": 0.5}}, "s-2": {"params": {}, "metrics": {}}}
    monkeypatch.setattr(run.dvcq, "show", lambda root, *select: shown)
    sw = Sweep(Path("."), "s", [], [], 1, baseline="abc", names=["s-1", "s-2", "s-3"])
    sw.states = {"s-1": "Success", "s-2": "Success", "s-3": "Success"}
    report.check_results(sw)
    assert sw.states == {"s-1": "Success", "s-2": "Failed", "s-3": "Failed"}
    assert sw.reasons["s-3"] == "the queue says Success but DVC has no results for it (`dvc exp show`)"
