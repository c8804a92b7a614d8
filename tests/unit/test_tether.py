"""runner/tether.py: a stage takes its secrets from stdin and stops when stdin closes."""

import os
import threading
import time

import pytest

from runner import tether


def test_secrets_line_goes_into_the_environment_and_nothing_past_it_is_read():
    r, w = os.pipe()
    os.write(w, b'{"MLFLOW_TRACKING_PASSWORD": "pw"}\nrest')
    env: dict = {}
    assert tether.receive(r, env) == {"MLFLOW_TRACKING_PASSWORD": "pw"} and env == {"MLFLOW_TRACKING_PASSWORD": "pw"}
    assert os.read(r, 10) == b"rest"
    os.write(w, b"\n")  # an empty line: no secrets
    assert tether.receive(r, env) == {}
    os.write(w, b"[1]\n")
    with pytest.raises(ValueError, match="JSON object"):
        tether.receive(r, env)
    os.close(w)
    assert tether.receive(r, env) == {}  # closed before any line
    os.close(r)


def test_end_of_stdin_stops_the_stage(capfd):
    r, w = os.pipe()
    gone, exited = threading.Event(), []
    # Not os._exit: this test runs inside pytest's own process.
    thread = tether.watch(r, gone.set, grace_s=0.1, hard_exit=exited.append)
    os.write(w, b"keepalive")
    assert not gone.wait(0.2)  # data is not the end
    os.close(w)  # the launcher died
    assert gone.wait(10)
    thread.join(10)
    assert "the runner is gone" in capfd.readouterr().err
    deadline = time.monotonic() + 10
    while not exited and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exited == [tether.EXIT_ORPHANED]  # the hard exit after the grace period
    os.close(r)


def test_attach_does_nothing_outside_a_stage_container():
    tether.attach({})
