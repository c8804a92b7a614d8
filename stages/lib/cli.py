"""Shared entry-point plumbing: argument parsing and clean, one-line failures.

Every stage body runs under `run`: an expected failure, an OSError (full disk,
unwritable path) and an interrupt (Ctrl-C, SIGTERM from `docker stop` or DVC,
SIGHUP from a closed terminal) each end in one line on stderr, no traceback.
Interrupts are raised as exceptions in the main thread, so every `with` block
on the way out (fsio's scratch dirs, the MLflow run) cleans up after itself.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

# What rerunning the stage does after an interrupt; a stage not named here starts over.
RESUMES = {"train": "rerunning resumes from the last completed epoch's checkpoint"}
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class PipelineError(Exception):
    """An expected failure (bad input, failed check); shown as one line, no traceback."""


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP, raised where the main thread is; a KeyboardInterrupt so
    libraries that clean up on Ctrl-C do so for the other two signals as well."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def parser(description: str, *paths: str) -> argparse.ArgumentParser:
    """Every stage takes its file paths from dvc.yaml's cmd, never from constants."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--params", required=True, help="params file (params.yaml)")
    for name in paths:
        ap.add_argument(f"--{name}", required=True)
    return ap


def require(*paths: str | Path, producer: str) -> None:
    """Fail in one line when an input that another stage writes is missing."""
    for path in map(Path, paths):
        if not path.is_file():
            raise PipelineError(f"{path}: file not found (run the {producer} stage)")


def describe_os_error(exc: OSError) -> str:
    """`path: reason (errno NAME)`: what failed where, without a traceback."""
    if exc.errno is None or exc.filename is None:  # e.g. a network error: its own text says it all
        return str(exc) or type(exc).__name__
    other = f" -> {exc.filename2}" if exc.filename2 is not None else ""
    return f"{exc.filename}{other}: {exc.strerror} (errno {exc.errno} {errno.errorcode.get(exc.errno, '?')})"


def _on_signal(signum, frame) -> None:
    for s in SIGNALS:  # one interrupt is enough: a second must not break the cleanup under way
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum)


def _install_handlers() -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}  # signals reach the main thread only; an embedding caller handles them
    return {s: signal.signal(s, _on_signal) for s in SIGNALS}


def interrupted_line(stage: str, signum: int) -> str:
    then = RESUMES.get(stage, "rerunning starts it over")
    return f"{stage}: interrupted by {signal.Signals(signum).name}; no partial output is left; {then}"


def run(stage: str, body: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> int:
    """Run a stage's body; an expected failure or OSError exits 1 with `stage: error: ...`,
    an interrupt exits 128 + the signal's number (130 for Ctrl-C) with one line."""
    previous = _install_handlers()
    try:
        body(argv)
    except PipelineError as exc:
        print(f"{stage}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{stage}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(interrupted_line(stage, signum), file=sys.stderr)
        return 128 + int(signum)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
