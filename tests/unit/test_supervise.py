import signal
import subprocess
import sys
import time

from tests.conftest import ROOT

CHILD = "trap 'echo interrupted; exit 3' INT; echo ready; while true; do sleep 0.1; done"


def test_sigterm_reaches_the_whole_child_group_as_sigint():
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner.supervise", "sh", "-c", CHILD], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # what `docker stop` sends to PID 1
    out, _ = proc.communicate(timeout=30)
    assert "interrupted" in out and proc.returncode == 3


def test_exit_code_passes_through_and_usage_is_checked():
    done = subprocess.run([sys.executable, "-m", "runner.supervise", "sh", "-c", "exit 7"], cwd=ROOT)
    assert done.returncode == 7
    assert subprocess.run([sys.executable, "-m", "runner.supervise"], cwd=ROOT, capture_output=True).returncode == 2
