"""`python -m runner.supervise CMD...`: PID 1 of the dvc-runner container.

As PID 1 a process gets no default signal handling, and `docker stop` or a
Ctrl-C in `docker compose run` reaches only PID 1. This runs CMD in its own
process group and turns SIGTERM/SIGINT/SIGHUP into SIGINT for that whole
group, so `dvc repro` and the stage launcher under it both see a Ctrl-C, and
the launcher stops its stage container instead of leaving it orphaned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

GRACE_S = 25  # how long the group gets to stop its containers before it is killed


def supervise(cmd: list[str]) -> int:
    deadline: list[float] = []  # set by the first signal: when the group gets SIGKILL
    group: list[int] = []  # the child's process group, once it exists

    def forward(signum, frame):
        deadline.append(time.monotonic() + GRACE_S)
        for pgid in group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGINT)

    # Handlers go in before the child starts: exec resets handled signals to their
    # defaults, whereas a SIGINT this process inherited as ignored (a shell's `cmd &`)
    # would stay ignored in the child and the forwarded Ctrl-C would do nothing.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    child = subprocess.Popen(cmd, start_new_session=True)
    group.append(child.pid)
    if deadline:  # a signal came while the child was starting
        forward(signal.SIGINT, None)
    while True:
        try:
            return child.wait(timeout=1)
        except subprocess.TimeoutExpired:
            if deadline and time.monotonic() > deadline[0]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python -m runner.supervise CMD [ARGS...]", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(supervise(sys.argv[1:]))
