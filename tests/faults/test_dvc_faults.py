"""DVC under faults: a second `dvc repro` while one runs, a corrupted cache object."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys

import pytest

from tests.support.faults import Expect, assert_clean, busy_ingest, finish, read_yaml, scratch, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_two_run_locals(sb):
    """A second `dvc repro` while the first holds DVC's lock is refused in one line."""
    busy_ingest(sb)  # the first stays in ingest until interrupted, however slow the second is
    first = sb.start([sys.executable, "-m", "dvc", "repro", "ingest"])
    wait_for(lambda: scratch(sb.root, "raw"), first)
    second = sb.dvc("repro")
    os.killpg(first.pid, signal.SIGINT)
    finish(first)
    assert_clean(sb, Expect(second, words=("lock",), lock_may_change=True))


def test_dvc_cache_corrupt(sb):
    """A corrupted cache object of data/processed is detected, not checked out silently as good."""
    lock = json.loads(json.dumps(read_yaml(sb.root / "dvc.lock")))
    out = next(o for o in lock["stages"]["preprocess"]["outs"] if o["path"] == "data/processed")
    cache = sb.root / ".dvc" / "cache" / "files" / "md5"
    listing = json.loads((cache / out["md5"][:2] / out["md5"][2:]).read_text())
    entry = next(e for e in listing if e["relpath"] == "train_y.npy")
    target = cache / entry["md5"][:2] / entry["md5"][2:]
    os.chmod(target, 0o644)
    target.write_bytes(target.read_bytes()[:-8] + b"\0" * 8)
    shutil.rmtree(sb.root / "data" / "processed")
    sb.dvc("checkout", "data/processed")
    status = sb.dvc("status")  # exits 0 while naming the damage: a plain success that says so
    assert_clean(sb, Expect(status, rc=0, words=("not in cache:       data/processed",)))
