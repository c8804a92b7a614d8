"""`python -m runner.guard dvc ARGS...`: the dvc-runner's entry (`make run`, `make stage`).

DVC's own locks cannot keep two runners apart: its rwlock records PIDs as seen
inside each container (every runner's dvc has the same small PID), so a second
runner takes the first's entries for its own, and after a killed runner the
host reads a live host process under that PID and stays blocked. So:

- One runner per project: the runner holds an flock on `.dvc/tmp/runner.lock`
  (a host-visible file; the kernel drops the lock when the runner dies, even
  by SIGKILL) and writes there which container holds it and which stage runs.
  A second `make run` stops in one line naming the first.
- Stale DVC locks: dvc runs in this process with argv[0] naming the runner's
  container, so every rwlock entry it writes says whose it is. Entries of
  runners whose container no longer runs are removed here at start, and by
  `python -m runner.guard --clear` (what `make run` calls after a runner died),
  together with this project's stage containers left by such runners.
- One line per interrupt or kill: the record also says which stage runs and
  whether its end was already said (runner/outcome.py); dvc's own summary of
  it is dropped.

Secrets reach the runner as a file (/run/secrets/pipeline, a bind mount of a
0600 file on the host's tmpfs), read into this process's environment only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from runner import outcome
from stages.lib.cli import PipelineError

LOCK = Path(".dvc/tmp/runner.lock")
MARK = "runner container"  # in argv[0], so in every rwlock entry dvc writes
SECRETS = Path("/run/secrets/pipeline")
_MARKED = re.compile(rf"{MARK} ([0-9a-f]{{12,64}})")


def container_id() -> str | None:
    """This container's id (from its mounts), or None outside a container."""
    with contextlib.suppress(OSError):
        found = re.search(r"/containers/([0-9a-f]{64})/", Path("/proc/self/mountinfo").read_text())
        if found:
            return found.group(1)
    return None


def holder(lock: Path = LOCK) -> dict:
    """What the runner holding the lock wrote about itself ({} if unreadable)."""
    try:
        return _parse(lock.read_bytes())
    except OSError:
        return {}


def _parse(raw: bytes) -> dict:
    try:
        found = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def acquire(cid: str, command: list[str], lock: Path = LOCK) -> int:
    """Take the project's runner lock; return its fd (keep it open). One line if another runner holds it."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        info = holder(lock)
        other = str(info.get("container", "unknown"))[:12]
        stage = f", stage {info['stage']}" if info.get("stage") else ""
        raise PipelineError(
            f"another `make run` is running in this project: runner container {other} "
            f"(`{info.get('command', 'dvc')}` since {info.get('started', '?')}{stage}); wait for it, "
            f"or stop it with `docker stop {other}`"
        ) from None
    os.ftruncate(fd, 0)  # a fresh record: nothing of the previous run's stages
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    note(fd, container=cid, command=" ".join(command), started=started, run=os.environ.get("PIPELINE_RUN", ""))
    return fd


def note(fd: int, **info: str) -> None:
    """Rewrite the holder's record (the lock stays held: flock is on the inode, not the bytes)."""
    record = {**_parse(os.pread(fd, 1 << 16, 0)), **info}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)


def mark(lock: Path = LOCK, **info: str) -> None:
    """Called by the launcher: the stage now running (`stage`, '' once it ended) and whether its
    interrupt or kill was said (`said`), for a second run's refusal and the one line of an interrupt."""
    if lock.is_file():
        with contextlib.suppress(OSError):
            fd = os.open(lock, os.O_RDWR)
            try:
                note(fd, **info)
            finally:
                os.close(fd)


def stale_entries(rwlock: dict, running: Callable[[str], bool]) -> list[tuple[str, str, dict]]:
    """(mode, path, info) of rwlock entries written by runners whose container no longer runs."""
    found = []
    for mode in ("write", "read"):
        for path, infos in (rwlock.get(mode) or {}).items():
            for info in infos if isinstance(infos, list) else [infos]:
                owner = _MARKED.search(str(info.get("cmd", "")))
                if owner and not running(owner.group(1)):
                    found.append((mode, path, info))
    return found


def drop(rwlock: dict, entries: list[tuple[str, str, dict]]) -> None:
    for mode, path, info in entries:
        if mode == "write":
            rwlock["write"].pop(path, None)
        else:
            rwlock["read"][path] = [i for i in rwlock["read"][path] if i != info]
            if not rwlock["read"][path]:
                del rwlock["read"][path]
    for mode in ("write", "read"):
        if mode in rwlock and not rwlock[mode]:
            del rwlock[mode]


def clear_stale_rwlock(tmp_dir: Path, running: Callable[[str], bool]) -> int:
    """Remove dead runners' entries from DVC's rwlock, under DVC's own guard; return how many."""
    from dvc.fs import localfs
    from dvc.rwlock import _edit_rwlock

    if not (tmp_dir / "rwlock").is_file():
        return 0
    with _edit_rwlock(str(tmp_dir), localfs, False) as rwlock:
        entries = stale_entries(rwlock, running)
        drop(rwlock, entries)
    if entries:  # one line, however many paths
        paths = sorted({path for _, path, _ in entries})
        owners = sorted({m.group(1) for _, _, info in entries if (m := _MARKED.search(str(info["cmd"])))})
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        print(
            f"runner: removed stale DVC locks on {', '.join(paths[:3])}{more}, left by runner container "
            f"{', '.join(owners)} (its container is gone)"
        )
    return len(entries)


def _docker():
    import docker

    return docker.from_env()


def running_check(client) -> Callable[[str], bool]:
    from docker.errors import NotFound

    def running(cid: str) -> bool:
        try:
            return client.containers.get(cid).status in ("running", "restarting", "paused", "created")
        except NotFound:
            return False

    return running


def remove_orphans(client, project: Path, running: Callable[[str], bool]) -> list[str]:
    """Remove this project's stage containers whose runner container is gone."""
    removed = []
    for ct in client.containers.list(all=True, filters={"label": f"cifar100.workdir={project}"}):
        runner = ct.labels.get("cifar100.runner", "")
        if runner and not running(runner):
            ct.remove(force=True)
            removed.append(ct.name)
            print(f"runner: removed stage container {ct.name} left by runner {runner[:12]}")
    return removed


def load_secrets(path: Path = SECRETS) -> None:
    """KEY=value lines from the runner's secret file into this process's environment."""
    if path.is_file():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip():
                os.environ[key.strip()] = value


def clear(project: Path) -> int:
    """After a runner died: if none holds the project, drop its stale DVC locks and orphans."""
    client = _docker()
    try:
        fd = acquire(container_id() or "none", ["clear"], project / LOCK)
    except PipelineError:
        return 0  # a live runner holds the project: its locks are not stale
    try:
        running = running_check(client)
        clear_stale_rwlock(project / ".dvc" / "tmp", running)
        remove_orphans(client, project, running)
    finally:
        os.close(fd)
    return 0


def run_dvc(args: list[str]) -> int:
    """Hold the project, clear what dead runners left, then run dvc here with a marked argv[0]."""
    from dvc.cli import main as dvc_main

    project = Path.cwd()
    cid = container_id()
    if cid is None:
        raise PipelineError("runner.guard runs inside the dvc-runner container: use `make run`")
    fd = acquire(cid, ["dvc", *args])
    client = _docker()
    running = running_check(client)
    clear_stale_rwlock(project / ".dvc" / "tmp", running)
    remove_orphans(client, project, running)
    load_secrets()
    os.environ["PIPELINE_RUNNER_ID"] = cid
    sys.argv = [f"dvc ({MARK} {cid[:12]})", *args]
    try:
        with outcome.quiet_dvc(lambda: _parse(os.pread(fd, 1 << 16, 0)), lambda **info: note(fd, **info)):
            return dvc_main(args)
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    try:
        if argv == ["--clear"]:
            return clear(Path.cwd())
        if not argv or argv[0] != "dvc":
            print("usage: python -m runner.guard dvc ARGS... | --clear", file=sys.stderr)
            return 2
        return run_dvc(argv[1:])
    except PipelineError as exc:
        print(f"runner: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before dvc ran: runner/compose-run.sh says so in one line
        return 130


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
