"""All-or-nothing writes: an output appears complete or not at all.

A stage that fails or is interrupted must leave no half-written output behind,
so everything is written next to its destination and renamed into place.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _scratch_prefix(dest: Path) -> str:
    return f".{dest.name}."


def _scratch_path(dest: Path) -> Path:
    """A new scratch path next to dest, not created yet. Callers hold its name before they
    create it, so an interrupt at any point (even as the create returns) finds it to remove."""
    return dest.parent / f"{_scratch_prefix(dest)}{secrets.token_hex(6)}"


def _create(path: Path, mode: int) -> int:
    """A new file at path (never an existing one), open for writing; mode less the umask."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)


def remove_stale_scratch(dest: Path) -> None:
    """Delete scratch next to `dest` that a killed writer (SIGKILL, OOM, power loss) left.

    Safe because one writer at a time owns an output: DVC's lock serialises the
    stages, and a stage writes each of its outputs from one place.
    """
    if dest.parent.is_dir():
        for stale in dest.parent.glob(f"{glob.escape(_scratch_prefix(dest))}*"):
            remove(stale)


def _named(exc: OSError, dest: Path) -> OSError:
    """An OSError from a write on an open file carries no path: give it the output's."""
    if exc.filename is None and exc.errno is not None:
        return OSError(exc.errno, exc.strerror, str(dest))
    return exc


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a scratch dir that becomes `path` only if the block succeeds.

    On failure or interrupt neither the scratch dir nor an older `path` survives:
    a stale output next to a failed run would look like that run's result.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(dest)
    scratch = _scratch_path(dest)
    try:
        os.mkdir(scratch)  # 0o777 less the umask: outputs follow the umask
        yield scratch
        remove(dest)
        os.replace(scratch, dest)
    except OSError as exc:
        _discard(scratch, dest)
        raise _named(exc, dest) from None
    except BaseException:
        _discard(scratch, dest)
        raise


def _discard(scratch: Path, dest: Path) -> None:
    shutil.rmtree(scratch, ignore_errors=True)
    with contextlib.suppress(OSError):
        remove(dest)


def write_bytes(path: str | Path, data: bytes) -> None:
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(dest)
    tmp = _scratch_path(dest)
    try:
        with os.fdopen(_create(tmp, 0o666), "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _named(exc, dest) from None
        raise


def check_writable(*files: str | Path, dirs: tuple[str | Path, ...] = ()) -> None:
    """Fail before any work when an output could not be written: the parent of each of
    `files` (outputs written by rename) and each of `dirs` (written into) must be, or be
    creatable as, a directory this process can create files in. Raises OSError naming
    the path and errno (cli.run turns it into one line)."""
    for where in [Path(f).parent for f in files] + [Path(d) for d in dirs]:
        while not where.exists() and where != where.parent:  # nothing is created: probe what exists
            where = where.parent
        if not where.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory (move it away)", str(where))
        probe = where / f".write-check.{secrets.token_hex(6)}"
        try:
            os.close(_create(probe, 0o600))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(probe)


def dumps_json(obj: Any) -> str:
    # Sorted keys and a fixed layout keep the bytes (and so dvc.lock) reproducible.
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_json(path: str | Path, obj: Any) -> None:
    write_bytes(path, dumps_json(obj).encode())


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def remove(*paths: str | Path) -> None:
    """Delete outputs of an earlier run so a failure cannot leave stale ones."""
    for p in map(Path, paths):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
