"""Host-wide exclusive locks: `flock` on files in one shared folder.

PIPELINE_LOCK_DIR (default /tmp/cifar100-locks) is shared by every process on
the host; the Docker launcher mounts it into stage containers at the same path
(runner/sweep_env.py), so containers and local processes lock alike. The kernel
drops a flock when its holder dies: a killed stage never leaves a lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from stages.lib.cli import PipelineError

DEFAULT_LOCK_DIR = "/tmp/cifar100-locks"


def lock_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("PIPELINE_LOCK_DIR") or DEFAULT_LOCK_DIR)


def prepare(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(directory, 0o1777)  # shared by every uid on the host, like /tmp
    return directory


def try_lock(path: Path, holder: str) -> int | None:
    """An open fd holding an exclusive flock on `path`, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, holder.encode())  # who holds it, for messages of those who wait
    return fd


def holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"


@contextlib.contextmanager
def exclusive(path: Path, who: str, timeout_s: float, poll_s: float = 0.05) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the block, waiting at most `timeout_s` for it."""
    prepare(path.parent)
    deadline = time.monotonic() + timeout_s
    fd = try_lock(path, who)
    while fd is None:
        if time.monotonic() > deadline:
            raise PipelineError(f"{path} stayed locked for {timeout_s:.0f} s (held by {holder(path)}): retry later")
        time.sleep(poll_s)
        fd = try_lock(path, who)
    try:
        yield
    finally:
        os.close(fd)
