"""A real PostgreSQL server for tests: `initdb` into a tmp dir, `pg_ctl start` on a free 127.0.0.1
port with its unix sockets in that tmp dir, stopped by its postmaster PID when the session is done.

The binaries are found on PATH, else in Debian's /usr/lib/postgresql/<major>/bin (the postgresql
package puts them there, off PATH). With none, the fixture skips with that reason. PostgreSQL
refuses to run as root: as root, the server runs as the `postgres` user (runuser) in a folder of
its own under /tmp (pytest's tmp folders are root-only).
Import `postgres_url` into a test module: one server for the whole session.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from smoke.servers import free_port

START_TIMEOUT_S = 60


def pg_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "initdb").exists():
            return Path(folder)
    return None


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop(data: Path) -> None:
    """SIGINT (fast shutdown) to the postmaster by its PID, SIGKILL after START_TIMEOUT_S."""
    pid = _postmaster_pid(data)
    if pid is None:
        return
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _as_owner(root: Path) -> list[str]:
    """The command prefix that runs as root's owner: `runuser -u postgres --` for root."""
    if os.geteuid() != 0:
        return []
    import pwd

    user = pwd.getpwnam("postgres")
    os.chown(root, user.pw_uid, user.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


def start(root: Path) -> tuple[str, Path]:
    """Initialise and start a server under root (a folder it may own); return (SQLAlchemy URL, data dir)."""
    folder = pg_bin()
    if folder is None:
        pytest.skip("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin)")
    prefix = _as_owner(root)
    data, sockets, port = root / "data", root / "sockets", free_port()
    subprocess.run([*prefix, "mkdir", str(sockets)], check=True)
    run = {"check": True, "capture_output": True, "text": True}
    subprocess.run(
        [*prefix, str(folder / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"], **run
    )  # type: ignore[call-overload]
    opts = f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off"
    log = sockets / "postgres.log"
    try:
        subprocess.run(
            [
                *prefix,
                str(folder / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                opts,
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ],
            **run,
        )  # type: ignore[call-overload]
    except subprocess.CalledProcessError as exc:
        stop(data)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"postgres did not start: {exc.stderr}\n{tail}") from None
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", data


@pytest.fixture(scope="session")
def postgres_url():
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="pytest-postgres-"))
    try:
        url, data = start(root)
        try:
            yield url
        finally:
            stop(data)
    finally:
        shutil.rmtree(root, ignore_errors=True)
