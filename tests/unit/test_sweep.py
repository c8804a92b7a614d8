"""The sweep driver's pure parts: grid keys, workers, progress lines, the report table and figure."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from stages.lib.cli import PipelineError
from sweep import __main__ as cli
from sweep import dvcq, report, run
from sweep.state import grid_keys


def test_grid_keys_follow_dvc_sweep_syntax():
    grid = ["recipes.fast.lr=0.2,0.4", "recipes.fast.label_smoothing=choice(0.1,0.2)", "+train.seed=range(0,3)"]
    assert grid_keys(grid) == ["recipes.fast.lr", "recipes.fast.label_smoothing", "train.seed"]
    with pytest.raises(PipelineError, match="sweep grid item 'lr' is not KEY=VALUES"):
        grid_keys(["lr"])


def test_default_jobs_is_one_worker_per_gpu_lease():
    assert run.default_jobs({"CUDA_VISIBLE_DEVICES": ""}) == 1
    assert run.default_jobs({"PIPELINE_GPU_POOL": "0,1,2,3"}) == 4
    assert run.default_jobs({"PIPELINE_GPU_POOL": "0,1,2,3", "PIPELINE_GPUS_PER_RUN": "2"}) == 2
    assert run.default_jobs({"PIPELINE_GPU_POOL": "0", "PIPELINE_GPUS_PER_RUN": "x"}) == 1


def test_sweep_id_and_record():
    assert run.new_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)).startswith("sweep-20260102-030405-")
    sw = run.Sweep(run.Path("."), "s", ["a.b=1,2"], ["train.recipe=fast"], 2, names=["s-1", "s-2"])
    rec = sw.record()
    assert rec["keys"] == ["a.b"] and rec["names"] == ["s-1", "s-2"] and json.dumps(rec)


def test_worker_env_carries_the_sweep_and_the_store():
    sw = run.Sweep(run.Path("/p"), "s", ["a.b=1,2"], [], 1, tracking_uri="sqlite:////p/mlflow.db", parent_run="r1")
    env = run.worker_env(sw, {"PATH": "/bin"})
    assert env["PIPELINE_SWEEP_ID"] == "s" and env["PIPELINE_SWEEP_PARENT_RUN"] == "r1"
    assert env["PIPELINE_SWEEP_KEYS"] == "a.b" and env["MLFLOW_TRACKING_URI"] == "sqlite:////p/mlflow.db"
    assert env["PIPELINE_GPUS_PER_RUN"] == "1" and env["PATH"] == "/bin"


def test_progress_line():
    states = {"s-1": "Success", "s-2": "Running", "s-3": "Running", "s-4": "Queued", "s-5": "Failed"}
    line = run.progress_line(states, {"s-2": "epoch 3/8"})
    assert line == "sweep: 1 done, 1 failed, 2 running, 1 queued: s-2 (epoch 3/8), s-3"


def test_queue_grid_parses_dvc_names(monkeypatch):
    out = "Queueing with overrides '...'.\nQueued experiment 's-1' for future execution.\n" * 1
    out += "Queued experiment 's-2' for future execution.\n"
    calls = []
    monkeypatch.setattr(dvcq, "dvc", lambda root, *args, env=None, check=True: calls.append(args) or out)
    assert dvcq.queue_grid(run.Path("."), "s", ["train.recipe=fast", "a=1,2"], {}) == ["s-1", "s-2"]
    assert calls[0] == ("exp", "run", "--queue", "-n", "s", "-S", "train.recipe=fast", "-S", "a=1,2")
    monkeypatch.setattr(dvcq, "dvc", lambda root, *args, env=None, check=True: "")
    with pytest.raises(PipelineError, match="queued no experiment"):
        dvcq.queue_grid(run.Path("."), "s", [], {})


def test_show_flattens_dvc_exp_show_json(monkeypatch):
    shown = [
        {"rev": "workspace", "name": None, "experiments": None},
        {
            "rev": "abc",
            "experiments": [
                {
                    "name": "s-1",
                    "revs": [
                        {
                            "name": "s-1",
                            "data": {
                                "params": {"params.yaml": {"data": {"recipes": {"fast": {"lr": 0.2}}}}},
                                "metrics": {"reports/metrics.json": {"data": {"test": {"top1": 0.5}}}},
                            },
                        }
                    ],
                }
            ],
        },
    ]
    monkeypatch.setattr(dvcq, "dvc", lambda root, *args, env=None, check=True: json.dumps(shown))
    assert dvcq.show(run.Path(".")) == {"s-1": {"params": {"recipes.fast.lr": 0.2}, "metrics": {"test.top1": 0.5}}}


def test_dvc_failure_is_one_line(tmp_path):
    with pytest.raises(PipelineError, match=r"`dvc queue status` failed: ERROR: .*"):
        dvcq.dvc(tmp_path, "queue", "status")


def _record() -> dict:
    return {
        "sweep_id": "s",
        "grid": ["recipes.fast.lr=0.1,0.2,0.4"],
        "fixed": ["train.recipe=fast"],
        "jobs": 2,
        "parent_run": "p",
        "keys": ["recipes.fast.lr"],
        "names": ["s-1", "s-2", "s-3"],
        "states": {"s-1": "Success", "s-2": "Failed", "s-3": "Success"},
    }


def test_report_rows_table_and_figure():
    shown = {
        "s-1": {"params": {"recipes.fast.lr": 0.1}, "metrics": {"test.top1": 0.25, "test.macro_f1": 0.2}},
        "s-3": {"params": {"recipes.fast.lr": 0.4}, "metrics": {"test.top1": 0.5}},
    }
    run3 = SimpleNamespace(
        data=SimpleNamespace(metrics={"train_duration_s": 12.34, "train_images_per_s": 999.6}),
        info=SimpleNamespace(run_id="r3"),
    )
    history = {"r3": [SimpleNamespace(step=2, value=0.4), SimpleNamespace(step=1, value=0.3)]}
    client = SimpleNamespace(get_metric_history=lambda run_id, key: history[run_id])
    rows = report.collect(_record(), shown, {"s-3": run3}, client)
    assert [r.name for r in rows] == ["s-3", "s-1", "s-2"]  # best top-1 first, failed last
    assert rows[0].curve == [(1, 0.3), (2, 0.4)] and rows[0].train_s == 12.34
    md = report.markdown(_record(), rows)
    lines = md.splitlines()
    assert lines[0] == "# Sweep s"
    assert "| Experiment | State | recipes.fast.lr | test top-1 | top-5 | macro F1 |" in md
    assert "| s-3 | Success | 0.4000 | 0.5000 | - | - | - | - | 12.3 | 1000 |" in lines
    assert "| s-2 | Failed | - | - | - | - | - | - | - | - |" in lines
    png = report.figure(rows, ["recipes.fast.lr"])
    assert png[:4] == b"\x89PNG"


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["report", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "sweep: error: reports/sweep.json: file not found (run `make sweep` first)\n"
    (tmp_path / "params.yaml").write_text((run.Path(__file__).parents[2] / "params.yaml").read_text())
    assert cli.main(["run", "--root", str(tmp_path), "--jobs", "0"]) == 1
    assert "JOBS must be a whole number >= 1, got 0" in capsys.readouterr().err


def test_wait_restarts_missing_workers_and_reports_changes(monkeypatch):
    """Two experiments wait while one runs with 2 workers asked for: the driver starts the missing worker."""
    sequence = iter(
        [
            {"s-1": "Running", "s-2": "Queued", "s-3": "Queued"},
            {"s-1": "Running", "s-2": "Queued", "s-3": "Queued"},
            {"s-1": "Running", "s-2": "Running", "s-3": "Queued"},
            {"s-1": "Success", "s-2": "Failed", "s-3": "Success"},
        ]
    )
    starts, said = [], []
    monkeypatch.setattr(dvcq, "status", lambda root: next(sequence))
    monkeypatch.setattr(dvcq, "start", lambda root, jobs, env: starts.append(jobs))
    monkeypatch.setattr(run.mlruns, "epochs", lambda sw: {"s-1": "epoch 2/8"})
    monkeypatch.setattr(run, "RESTART_AFTER_S", 0.0)
    sw = run.Sweep(run.Path("."), "s", ["a=1,2,3"], [], 2, names=["s-1", "s-2", "s-3"])
    run.wait(sw, {}, said.append, poll_s=0.01, timeout_s=60)
    assert starts and set(starts) == {2} and len(starts) <= 2  # only while fewer than 2 ran
    assert "sweep: 0 done, 0 failed, 1 running, 2 queued: s-1 (epoch 2/8)" in said
    assert "sweep: 1 of 2 workers busy while experiments wait: restarting the missing workers" in said
    assert said[-1] == "sweep: 2 done, 1 failed, 0 running, 0 queued"
    assert sw.states["s-2"] == "Failed"


def test_wait_is_bounded(monkeypatch):
    monkeypatch.setattr(dvcq, "status", lambda root: {"s-1": "Queued"})
    monkeypatch.setattr(dvcq, "start", lambda root, jobs, env: None)
    sw = run.Sweep(run.Path("."), "s", ["a=1"], [], 1, names=["s-1"])
    with pytest.raises(PipelineError, match="sweep s not done after 0 s"):
        run.wait(sw, {}, lambda text: None, poll_s=0.01, timeout_s=0.0)


def test_head_needs_a_commit(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    with pytest.raises(PipelineError, match="has no git commit to run experiments from: commit the pipeline first"):
        dvcq.head(tmp_path)
