"""The feedback store's PostgreSQL: the one throwaway server of tests/support/pg.py (initdb,
pg_ctl on a free 127.0.0.1 port, stopped by PID; skips with the reason when PostgreSQL is not
installed), with a `feedback` database, as a SQLAlchemy URL."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.pg import start


@pytest.fixture(scope="session")
def postgres_url():
    root = Path(tempfile.mkdtemp(prefix="pytest-postgres-"))
    try:
        pg = start(root, user="feedback")
        try:
            pg.create_database("feedback")
            yield pg.url("feedback", with_password=True)
        finally:
            pg.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
