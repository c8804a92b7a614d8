"""ops.baseline: which stages a `dvc status --json` calls stale, on constructed statuses."""

from __future__ import annotations

from pathlib import Path

from ops import baseline

OUTS = {"a": ["out_a"], "b": ["out_b", "m.json"], "c": ["out_c"]}


def test_a_fresh_clone_is_missing_outputs_not_stale():
    status = {
        "a": [{"changed outs": {"out_a": "not in cache"}}],
        "b": [{"changed deps": {"out_a": "deleted"}}, {"changed outs": {"out_b": "deleted"}}],
    }
    assert baseline.stale_stages(status, OUTS) == []


def test_changed_code_params_and_command_are_stale_in_dag_order():
    status = {
        "c": ["changed command"],
        "a": [{"changed deps": {"a.py": "modified", "params.yaml": {"x": "modified"}}}],
        "b": [{"changed deps": {"out_a": "deleted", "b.py": "deleted"}}],  # a deleted source file is a change
    }
    assert baseline.stale_stages(status, OUTS) == ["a", "b", "c"]


def test_stage_outs_reads_outs_metrics_and_plots(tmp_path: Path):
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: x\n    outs: [o1, {o2: {cache: false}}]\n    metrics: [{m.json: {cache: false}}]\n"
    )
    assert baseline.stage_outs(tmp_path) == {"s": ["o1", "o2", "m.json"]}


def test_lock_outs_keys_stage_and_path():
    lock = {"stages": {"ingest": {"outs": [{"path": "data/raw", "md5": "abc.dir"}]}, "train": {"outs": []}}}
    assert baseline.lock_outs(lock, ("ingest", "validate")) == {"ingest:data/raw": "abc.dir"}


def test_default_archive_prefers_the_setting(tmp_path: Path):
    assert baseline.default_archive({"CIFAR100_ARCHIVE": "/x.tar.gz"}, tmp_path) == Path("/x.tar.gz")
    assert baseline.default_archive({"CIFAR100_DIR": str(tmp_path)}, tmp_path) is None
    (tmp_path / baseline.ARCHIVE_NAME).write_bytes(b"")
    assert baseline.default_archive({"CIFAR100_DIR": str(tmp_path)}, tmp_path) == tmp_path / baseline.ARCHIVE_NAME


def test_without_a_committed_lock_every_stage_is_stale_and_the_reason_says_so(tmp_path: Path):
    (tmp_path / "dvc.yaml").write_text("stages:\n  a:\n    cmd: x\n    outs: [o]\n  b:\n    cmd: y\n")
    report = baseline.check(tmp_path, {})
    assert report == {
        "stages": 2,
        "stale": ["a", "b"],
        "data_hash_matches_shared_copy": None,
        "reason": "no dvc.lock committed: run `make baseline` to make one",
    }
