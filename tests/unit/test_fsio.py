import errno
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


def _interrupted_as_it_returns(real):
    """`real`, then Ctrl-C before the caller's next statement: the worst moment for an interrupt."""

    def make(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    return make


@pytest.mark.parametrize("writer", ["atomic_dir", "write_bytes", "check_writable"])
def test_an_interrupt_as_the_scratch_appears_leaves_no_scratch(tmp_path, monkeypatch, writer):
    """Ctrl-C right as the scratch is created (the fault matrix's sigint_ingest once hit it with
    mkdtemp: `data/.raw.XXXX` left): its name is known before it exists, so the cleanup finds it."""
    if writer == "atomic_dir":
        monkeypatch.setattr(fsio.os, "mkdir", _interrupted_as_it_returns(os.mkdir))
    else:
        monkeypatch.setattr(fsio, "_create", _interrupted_as_it_returns(fsio._create))
    with pytest.raises(KeyboardInterrupt):
        if writer == "atomic_dir":
            with fsio.atomic_dir(tmp_path / "out"):
                pass
        elif writer == "write_bytes":
            fsio.write_bytes(tmp_path / "out", b"x")
        else:
            fsio.check_writable(tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == []


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


def test_scratch_a_killed_writer_left_is_removed_by_the_next_write(tmp_path):
    (tmp_path / ".out.abc123").mkdir()  # atomic_dir's scratch after a SIGKILL
    (tmp_path / ".out.abc123" / "half").write_text("x")
    (tmp_path / ".report.json.xyz").write_text("{")  # write_bytes' temp file after a SIGKILL
    (tmp_path / ".outer.keep").write_text("not ours")
    with fsio.atomic_dir(tmp_path / "out") as scratch:
        (scratch / "new").write_text("new")
    fsio.write_json(tmp_path / "report.json", {"a": 1})
    assert _leftovers(tmp_path, "out") == [] and _leftovers(tmp_path, "report.json") == []
    assert (tmp_path / ".outer.keep").exists()


def test_an_os_error_inside_atomic_dir_names_the_output(tmp_path):
    with pytest.raises(OSError) as info:
        with fsio.atomic_dir(tmp_path / "out"):
            with open("/dev/full", "wb") as f:  # a real ENOSPC, from a write that names no path
                f.write(b"x" * 65536)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "out")
    assert _leftovers(tmp_path, "out") == [] and not (tmp_path / "out").exists()


def test_check_writable_refuses_a_file_where_a_directory_must_be(tmp_path):
    (tmp_path / "checkpoints").write_text("")
    with pytest.raises(NotADirectoryError) as info:
        fsio.check_writable(tmp_path / "models", dirs=(tmp_path / "checkpoints",))
    assert info.value.filename == str(tmp_path / "checkpoints") and info.value.errno == errno.ENOTDIR
    (tmp_path / "reports").write_text("")
    with pytest.raises(NotADirectoryError):
        fsio.check_writable(tmp_path / "reports" / "validate.json")


def test_check_writable_creates_nothing(tmp_path):
    fsio.check_writable(tmp_path / "a" / "b" / "out.json", dirs=(tmp_path / "ckpt",))
    assert list(tmp_path.iterdir()) == []
