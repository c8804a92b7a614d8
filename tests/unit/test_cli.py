"""cli.run: every way a stage can end is one line on stderr, with the right exit code."""

import errno
import os
import signal
import time

import pytest

from stages.lib import cli


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_an_expected_failure_exits_1(capsys):
    def body(argv):
        raise cli.PipelineError("bad thing")

    assert cli.run("ingest", body) == 1
    assert _one_line(capsys) == "ingest: error: bad thing"


def test_an_os_error_names_path_and_errno(capsys, tmp_path):
    def body(argv):
        (tmp_path / "checkpoints").write_text("")
        (tmp_path / "checkpoints" / "x.pt").write_bytes(b"")

    assert cli.run("train", body) == 1
    assert _one_line(capsys) == f"train: error: {tmp_path}/checkpoints/x.pt: Not a directory (errno 20 ENOTDIR)"


def test_an_os_error_without_a_path_keeps_its_own_text(capsys):
    def body(argv):
        raise ConnectionRefusedError("cannot reach http://127.0.0.1:9")

    assert cli.run("train", body) == 1
    assert _one_line(capsys) == "train: error: cannot reach http://127.0.0.1:9"
    assert cli.describe_os_error(OSError(errno.ENOSPC, "No space left on device", "ck")).endswith("(errno 28 ENOSPC)")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_real_signal_ends_in_one_line_and_128_plus_its_number(capsys, sig, code):
    before = signal.getsignal(sig)

    def body(argv):
        os.kill(os.getpid(), sig)
        time.sleep(5)  # interrupted long before this ends
        raise AssertionError("not interrupted")

    assert cli.run("train", body) == code
    line = _one_line(capsys)
    assert line.startswith(f"train: interrupted by {sig.name};") and "resumes from the last completed epoch" in line
    assert signal.getsignal(sig) is before  # handlers are put back


def test_other_stages_say_a_rerun_starts_over(capsys):
    def body(argv):
        raise KeyboardInterrupt

    assert cli.run("preprocess", body) == 130
    assert _one_line(capsys).endswith("rerunning starts it over")
