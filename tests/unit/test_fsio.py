import os
import stat

import pytest

from stages.lib import fsio


def _leftovers(parent, name):
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_atomic_dir_appears_complete_and_replaces_the_old_output(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "stale").write_text("old")
    with fsio.atomic_dir(dest) as scratch:
        (scratch / "new").write_text("new")
        assert not (dest / "new").exists()  # nothing visible until the block ends
    assert sorted(p.name for p in dest.iterdir()) == ["new"]
    assert _leftovers(tmp_path, "out") == []


def test_atomic_dir_failure_leaves_neither_scratch_nor_old_output(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "stale").write_text("old")
    with pytest.raises(RuntimeError):
        with fsio.atomic_dir(dest) as scratch:
            (scratch / "half").write_text("x")
            raise RuntimeError("boom")
    assert not dest.exists()
    assert _leftovers(tmp_path, "out") == []


def test_atomic_dir_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with fsio.atomic_dir(tmp_path / "out"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


def test_write_bytes_is_atomic_and_cleans_up_on_failure(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    fsio.write_bytes(path, b"one")
    assert path.read_bytes() == b"one"
    with pytest.raises(TypeError):
        fsio.write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"one"  # the old content survives a failed write
    assert _leftovers(path.parent, "f.bin") == []


def test_json_is_sorted_and_stable(tmp_path):
    fsio.write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "a.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert fsio.read_json(tmp_path / "a.json") == {"a": [1, 2], "b": 1}


def test_remove_handles_files_dirs_links_and_absent_paths(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    (tmp_path / "f").write_text("f")
    (tmp_path / "link").symlink_to(tmp_path / "d")
    fsio.remove(tmp_path / "link", tmp_path / "f", tmp_path / "absent")
    assert (tmp_path / "d" / "x").exists()  # a link is removed, never followed
    fsio.remove(tmp_path / "d")
    assert list(tmp_path.iterdir()) == []
