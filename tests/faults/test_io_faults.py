"""I/O faults (item 8): a file where an output folder must be, a full disk."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.faults import Expect, assert_clean

pytestmark = [pytest.mark.faults, pytest.mark.slow]


@pytest.mark.parametrize(
    ("name", "stage", "words", "absent"),
    [
        pytest.param("checkpoints", "train", ("checkpoints", "ENOTDIR"), ("epoch 1/",), id="checkpoints_is_file"),
        pytest.param("data", "ingest", ("data", "errno"), (), id="data_is_file"),
        pytest.param("reports", "validate", ("reports", "errno"), (), id="reports_is_file"),
    ],
)
def test_file_where_an_output_folder_must_be(sb, name, stage, words, absent):
    shutil.rmtree(sb.root / name, ignore_errors=True)
    (sb.root / name).write_text("")
    exp = Expect(sb.stage(stage), words=words, absent=absent)
    (sb.root / name).unlink()  # the injected file itself is not a leftover
    assert_clean(sb, exp)


def test_disk_full_checkpoints(sb):
    """A 64 KiB tmpfs as checkpoints/: the first epoch's checkpoint does not fit (ENOSPC)."""
    ckpt = sb.root / "checkpoints"
    ckpt.mkdir(exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(ckpt)], capture_output=True)
    if mounted.returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root): " + mounted.stderr.decode().strip()[:80])
    sb.mounts.append(ckpt)
    exp = Expect(sb.stage("train"), words=("ENOSPC", "checkpoints/"))
    left = list(ckpt.iterdir())
    if left:
        exp.notes.append(f"left on the full disk: {[p.name for p in left]}")
    assert_clean(sb, exp)
