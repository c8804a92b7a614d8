"""Starting a local server for a smoke run, a bench or a test: a free port on 127.0.0.1,
the process in its own process group (so stopping it reaches its workers), its output in a
log file, and a bounded wait until it answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 120  # MLflow needs about 25 s on 2 busy cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> None:
        """SIGTERM to the server's process group (its workers too), SIGKILL after 15 s."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def launch(name: str, cmd: list[str], workdir: Path, env: dict[str, str], url: str, cwd: Path | None = None) -> Server:
    """Start cmd in cwd (default: workdir) with os.environ (minus the caller's MLFLOW_*, AWS_*
    settings) plus env; its output goes to workdir/NAME.log."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    log = workdir / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd or workdir, env={**base, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )  # own process group: stop() reaches its workers
    return Server(name, proc, url, log)


def wait_ready(
    server: Server, path: str, headers: dict[str, str] | None = None, timeout_s: float = START_TIMEOUT_S
) -> None:
    """Poll GET url+path until 200, the process dies, or timeout_s pass."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n{server.tail()}")
        try:
            req = urllib.request.Request(server.url + path, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"{server.name} not ready after {timeout_s:g} s:\n{server.tail()}")
