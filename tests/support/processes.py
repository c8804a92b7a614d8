"""A group of processes started together (torchrun "nodes"), each in its own process group
with its output in a log file, waited for under one deadline, and killed, group and all
(torchrun's workers too), when one fails or the deadline passes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Started:
    name: str
    proc: subprocess.Popen
    log: Path

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def tail(self) -> str:
        return f"--- {self.name} ---\n" + self.log.read_text(errors="replace")[-4000:]


def start(name: str, cmd: list[str], cwd: Path, env: dict[str, str], logs: Path) -> Started:
    log = logs / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Started(name, proc, log)


def finish(started: list[Started], timeout_s: float) -> list[int]:
    """Every process's exit code; on a failure or past the deadline, all are killed and the
    assertion carries their logs."""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            codes = [s.proc.poll() for s in started]
            if any(code not in (None, 0) for code in codes) or all(code == 0 for code in codes):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"still running after {timeout_s:.0f} s\n" + "\n".join(s.tail() for s in started))
        codes = [s.proc.poll() for s in started]
        assert all(code == 0 for code in codes), f"exit codes {codes}\n" + "\n".join(s.tail() for s in started)
        return [int(code) for code in codes if code is not None]
    finally:
        for s in started:
            s.kill()
