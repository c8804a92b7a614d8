"""A remote that is down the hard way: it accepts TCP connections on 127.0.0.1 and never answers
(a hung endpoint), so a client waits for its own timeouts instead of failing fast."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path


class Blackhole:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.conns.append(conn)  # kept open, never read or answered

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


def dvc_project_with_remote(tmp_path: Path, endpoint: str) -> Path:
    """A git + DVC project with one tracked file and an S3 remote at endpoint (the real dvc CLI)."""
    dvc = [sys.executable, "-m", "dvc"]
    for cmd in (
        ["git", "init", "-q"],
        [*dvc, "init", "-q"],
        [*dvc, "remote", "add", "-d", "-q", "s3r", "s3://bucket/path"],
        [*dvc, "remote", "modify", "s3r", "endpointurl", endpoint],
    ):
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    (tmp_path / "data.txt").write_text("x\n")
    subprocess.run([*dvc, "add", "-q", "data.txt"], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    return tmp_path
