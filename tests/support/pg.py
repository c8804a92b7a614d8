"""A real PostgreSQL for the tests (team MLflow, the feedback store): `initdb` (scram-sha-256) into a fresh
folder, `pg_ctl start` on a free 127.0.0.1 port, stopped by the postmaster's PID. Skips with the
reason when initdb is missing. PostgreSQL refuses to run as root: as root it runs as the `postgres`
user (runuser) in a folder of its own under /tmp (pytest's tmp folders are root-only).
tests/support/postgres.py builds the feedback store's fixture on it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from smoke.servers import free_port

START_TIMEOUT_S = 60


@dataclass
class Postgres:
    port: int
    user: str
    password: str
    data: Path

    def url(self, dbname: str, with_password: bool = False) -> str:
        """SQLAlchemy URL; without the password libpq takes it from PGPASSWORD (as in deploy/)."""
        auth = f"{self.user}:{self.password}" if with_password else self.user
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> None:
        import psycopg

        conninfo = f"host=127.0.0.1 port={self.port} user={self.user} password={self.password} dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        """SIGINT (PostgreSQL's fast shutdown) to the postmaster's PID, SIGKILL if it outlives the wait."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
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


def _owner_prefix(root: Path) -> list[str]:
    if os.geteuid() != 0:
        return []
    import pwd

    user = pwd.getpwnam("postgres")
    os.chown(root, user.pw_uid, user.pw_gid)
    return ["runuser", "-u", "postgres", "--"]


def pg_bin() -> Path | None:
    """initdb's folder: on PATH, else Debian's /usr/lib/postgresql/<major>/bin (off PATH)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    folders = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    return next((f for f in folders if (f / "initdb").exists()), None)


def start(root: Path, user: str = "mlflow") -> Postgres:
    """Initialise and start a server in root (which it may own)."""
    folder = pg_bin()
    if folder is None:
        pytest.skip("PostgreSQL is not installed: no initdb on PATH or in /usr/lib/postgresql/*/bin")
    prefix, password = _owner_prefix(root), f"pg-{secrets.token_hex(8)}"
    pg = Postgres(free_port(), user, password, root / "data")
    pwfile = root / "pw"
    pwfile.write_text(password)
    if prefix:
        shutil.chown(pwfile, "postgres", "postgres")
    ok = {"check": True, "capture_output": True, "text": True}
    initdb = [str(folder / "initdb"), "-D", str(pg.data), "-U", user, f"--pwfile={pwfile}", "--auth=scram-sha-256"]
    initdb.append("--no-sync")  # a throwaway cluster: no fsync
    subprocess.run([*prefix, *initdb], **ok)  # type: ignore[call-overload]
    pwfile.unlink()
    opts = f"-h 127.0.0.1 -p {pg.port} -k {root} -c fsync=off -c max_connections=100"
    log = root / "postgres.log"
    ctl = [str(folder / "pg_ctl"), "-D", str(pg.data), "-l", str(log), "-o", opts, "-w", "-t", str(START_TIMEOUT_S)]
    try:
        subprocess.run([*prefix, *ctl, "start"], **ok)  # type: ignore[call-overload]
    except subprocess.CalledProcessError as exc:
        pg.stop()
        raise RuntimeError(f"postgres did not start: {exc.stderr}") from None
    return pg


@pytest.fixture(scope="module")
def postgres():
    root = Path(tempfile.mkdtemp(prefix="pytest-pg-"))
    try:
        pg = start(root)
        try:
            yield pg
        finally:
            pg.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
