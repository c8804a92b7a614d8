"""Issue 22's GPU preparation, the parts that hold anywhere: the archive's chunked transport
(bench/gpu/chunks.py), the result line of bench/time_to_accuracy.py and the trace arithmetic of
bench/profile_step.py."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from bench import profile_step, time_to_accuracy
from bench.gpu import chunks
from stages.lib import device
from tests.conftest import ROOT


def _blob(tmp_path, size: int = 100_000):
    src = tmp_path / "archive.tar.gz"
    src.write_bytes(os.urandom(size))
    return src


def test_split_then_join_gives_the_same_bytes_from_parts_spread_over_folders(tmp_path):
    src = _blob(tmp_path)
    parts = chunks.split(src, tmp_path / "parts", chunks.parse_size("30K"))
    assert [p.stat().st_size for p in parts] == [30_720, 30_720, 30_720, 7_840]
    lines = (tmp_path / "parts" / chunks.MANIFEST).read_text().splitlines()
    assert lines[-1] == f"{hashlib.md5(src.read_bytes()).hexdigest()}  {src.name}"  # md5sum -c format
    later = tmp_path / "stash"  # a part carried by an earlier call
    later.mkdir()
    parts[0].rename(later / parts[0].name)
    manifest = tmp_path / "parts" / chunks.MANIFEST
    rebuilt = chunks.join(manifest, [tmp_path / "parts", later], tmp_path / "out")
    assert rebuilt.read_bytes() == src.read_bytes() and rebuilt.name == src.name


def test_a_missing_or_damaged_part_is_named_before_joining(tmp_path):
    parts = chunks.split(_blob(tmp_path), tmp_path / "parts", 40_000)
    manifest = tmp_path / "parts" / chunks.MANIFEST
    parts[1].unlink()
    assert chunks.missing_parts(manifest, [tmp_path / "parts"]) == [parts[1].name]
    with pytest.raises(chunks.ChunkError, match=parts[1].name):
        chunks.join(manifest, [tmp_path / "parts"], tmp_path / "out")
    parts = chunks.split(_blob(tmp_path), tmp_path / "parts", 40_000)
    parts[2].write_bytes(parts[2].read_bytes()[:-1] + b"?")
    with pytest.raises(chunks.ChunkError, match=f"{parts[2].name}: md5"):
        chunks.join(manifest, [tmp_path / "parts"], tmp_path / "out")


def test_the_cli_check_exits_3_while_parts_are_missing(tmp_path):
    parts = chunks.split(_blob(tmp_path), tmp_path / "parts", 60_000)
    manifest = str(tmp_path / "parts" / chunks.MANIFEST)
    assert chunks.main(["check", manifest]) == 0
    parts[0].unlink()
    assert chunks.main(["check", manifest]) == 3
    assert chunks.main(["join", manifest, str(tmp_path / "out")]) == 1


@pytest.mark.parametrize("text", ["0", "12Q", "M", "-1M"])
def test_a_bad_part_size_is_refused(text):
    with pytest.raises(chunks.ChunkError, match="--size"):
        chunks.parse_size(text)


def test_the_result_line_has_the_issues_keys_and_a_limited_run_never_meets_the_goal():
    cfg = time_to_accuracy.load_config(ROOT / "params.yaml", "fast", epochs=2, compile="off")
    assert (cfg.recipe, cfg.model, cfg.epochs) == ("fast", "resnet9", 2)
    rt = device.resolve(cfg)
    timings = [{"epoch_seconds": 2.0, "epoch_images": 1000}, {"epoch_seconds": 1.0, "epoch_images": 1000}]
    extra = {"compile_seconds": 0.0, "eval_seconds": 0.5, "limited": True, "train_images": 1000}
    line = time_to_accuracy.result(cfg, rt, timings, 0.9, extra)
    issue = {"recipe", "device", "top1", "train_seconds", "img_per_s", "epochs", "compile_seconds", "torch", "commit"}
    assert issue <= line.keys()
    assert (line["train_seconds"], line["img_per_s"], line["epochs"]) == (3.0, 666.7, 2)
    assert line["met_goal"] is False and line["train_images"] == 1000
    json.dumps(line)  # one JSON line: every value serialisable


def test_host_syncs_counts_every_sync_name_and_nothing_else():
    names = ["aten::item", "aten::_local_scalar_dense", "aten::conv2d", "cudaStreamSynchronize", "aten::item"]
    counts = profile_step.host_syncs(names)
    assert counts["aten::item"] == 2 and counts["cudaStreamSynchronize"] == 1
    assert counts["cudaDeviceSynchronize"] == 0 and "aten::conv2d" not in counts


def test_the_timeline_merges_overlapping_intervals_and_measures_the_gaps():
    # busy 0-10 and 5-20 (overlap, another stream), then a 30 us gap, busy 50-60, a 5 us gap, busy 65-100
    got = profile_step.timeline([(50, 60), (0, 10), (5, 20), (65, 100)], steps=2)
    assert got["busy_fraction"] == pytest.approx(65 / 100)
    assert got["idle_ms_per_step"] == pytest.approx(35 / 1e3 / 2, abs=1e-3)  # rounded to 1 us
    assert got["gaps_over_10us"] == 1 and got["largest_gaps_us"] == [30.0, 5.0]
    assert profile_step.timeline([], steps=1)["busy_fraction"] is None


def test_run_sh_refuses_an_unknown_mode_and_run_mode_needs_the_device_tools_out():
    script = str(ROOT / "bench/gpu/run.sh")
    assert subprocess.run(["bash", "-n", script]).returncode == 0
    assert subprocess.run(["bash", script, "bogus"], capture_output=True).returncode == 2
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    proc = subprocess.run(["bash", script], capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "OUT" in proc.stderr
