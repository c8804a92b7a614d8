"""The stage container's end of the launcher's stdin: secrets in, and death with the runner.

The launcher (runner/launch.py) creates each stage container with stdin open
and attached once (Docker's StdinOnce), writes one JSON line of the secrets
this stage uses, and keeps the stream open while the stage runs. Inside, the
stage reads that line into its own environment (so the secrets never appear
in the container's configuration: `docker inspect` shows none) and then
waits on stdin: end of file means the launcher is gone (killed with its
runner container, by SIGKILL or OOM), so the stage interrupts itself and
the container ends instead of training on, orphaned.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import MutableMapping

ENV_FLAG = "PIPELINE_TETHER"  # set by the launcher on stage containers
GRACE_S = 20.0  # after the interrupt, how long the stage gets to clean up before a hard exit
EXIT_ORPHANED = 137  # as if killed: what the runner would have seen


def _readline(fd: int) -> bytes:
    """One line from fd, byte by byte: nothing past it is consumed, and no buffered
    reader's lock is held by the watcher thread when the interpreter exits."""
    line = b""
    while not line.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
    return line


def receive(fd: int, environ: MutableMapping[str, str]) -> dict[str, str]:
    """Read the launcher's first line (a JSON object of secrets) into environ."""
    line = _readline(fd)
    secrets = json.loads(line) if line.strip() else {}
    if not isinstance(secrets, dict):
        raise ValueError("the launcher's first stdin line must be a JSON object")
    environ.update({str(k): str(v) for k, v in secrets.items()})
    return secrets


def watch(fd: int, on_gone, grace_s: float = GRACE_S, hard_exit=os._exit) -> threading.Thread:
    """A daemon thread that calls on_gone() at end of fd, then hard_exit(137) after grace_s
    (os._exit: a stage that ignores the interrupt still ends)."""

    def run() -> None:
        while os.read(fd, 1 << 12):
            pass
        print("stage: the runner is gone (its stdin closed): stopping", file=sys.stderr, flush=True)
        on_gone()
        hard = threading.Timer(grace_s, hard_exit, (EXIT_ORPHANED,))
        hard.daemon = True  # a stage that stops in time exits without waiting for it
        hard.start()

    thread = threading.Thread(target=run, name="tether", daemon=True)
    thread.start()
    return thread


def attach(environ: MutableMapping[str, str] = os.environ) -> None:
    """In a stage container (PIPELINE_TETHER=1): take the secrets, then watch for the runner's end."""
    if environ.get(ENV_FLAG) != "1":
        return
    fd = sys.stdin.fileno()
    receive(fd, environ)
    watch(fd, lambda: os.kill(os.getpid(), signal.SIGINT))
