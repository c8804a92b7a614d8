"""The fault matrix's sandbox and judge (tests/faults, issue 12).

One tiny sandbox (smoke/sandbox.py: synthetic 4+2 images per class, small net,
2 epochs) is taken through `dvc repro` once; each case gets its own copy, injects
its fault, runs the stage (directly, as dvc.yaml's cmd does) or `dvc` or `make`,
and is judged. A case is clean when
- its output holds no traceback and at most one complaint from the stage (plus at
  most DVC's own one-line `ERROR:` summary), and the expected exit code and words;
- it leaves nothing behind: no new hidden scratch entries (`data/.raw.XXXX`, temp
  files), no new untracked files in `git status`, an unchanged dvc.lock and
  unchanged MLflow aliases (unless the case is meant to change them), and no stage
  or runner container left (Docker cases).
"""

from __future__ import annotations

import http.server
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from smoke.sandbox import SMOKE_OVERRIDES, merge

TINY = {
    **SMOKE_OVERRIDES,
    "data": merge(SMOKE_OVERRIDES["data"], {"synthetic": {"train_per_class": 4, "test_per_class": 2}}),
    "preprocess": {"val_fraction": 0.25},
    "validate": {"max_train_test_duplicates": 0},
    "recipes": {"fast": {**SMOKE_OVERRIDES["recipes"]["fast"], "epochs": 2}},
}
CASE_TIMEOUT_S = 240
COMPLAINT = re.compile(r"error|exception|traceback|interrupted|killed|failed", re.IGNORECASE)
PROGRESS = re.compile(r"\d+%\|")  # tqdm bars
TOOLS = ("ERROR:", "make: ***")  # DVC's and make's one-line summaries of a failed command
SKIP_DIRS = {".git", ".dvc"}
COMPOSE_PROJECT = f"faults{os.getpid()}"  # this session's dvc-runner containers


@dataclass
class Result:
    rc: int
    out: str  # stdout and stderr together


@dataclass
class Expect:
    result: Result
    rc: int | None = None  # None: any non-zero
    words: tuple[str, ...] = ()  # each must appear in the output
    absent: tuple[str, ...] = ()  # none may appear
    lock_may_change: bool = False
    aliases_may_change: bool = False
    notes: list[str] = field(default_factory=list)  # problems the case found itself


def finish(proc: subprocess.Popen, timeout: float = CASE_TIMEOUT_S) -> Result:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out += f"\n(faults: killed after {timeout} s)"
    return Result(proc.returncode, out)


def wait_for(what: Callable[[], bool], proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the process ended (rc {proc.returncode}) or timed out before the fault point")
        time.sleep(0.02)


def read_yaml(path: Path):
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(path.read_text())


def write_yaml(path: Path, raw) -> None:
    from ruamel.yaml import YAML

    with open(path, "w") as f:
        YAML(typ="safe", pure=True).dump(raw, f)


class Sandbox:
    """One case's copy of the prepared project."""

    def __init__(self, root: Path, docker: bool = False):
        self.root = root
        self.docker = docker  # judged for leftover containers too
        self.procs: list[subprocess.Popen] = []
        self.mounts: list[Path] = []
        self.stops: list[Callable[[], None]] = []  # local stand-in servers, stopped by close()
        self.before: dict | None = None  # taken when the first command starts: after the injection

    def begin(self) -> None:
        """Take the `before` snapshot unless taken: the fault is injected, commands start now."""
        if self.before is None:
            self.before = snapshot(self.root)

    def env(self, extra: dict | None = None) -> dict:
        # As from a terminal: no MLflow or AWS settings of the caller, and no MAKEFLAGS/MAKELEVEL
        # of a `make bench-faults` (a nested make would say `make[2]: ***`, not `make: ***`).
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "MAKE", "MFLAGS"))}
        env.update(PIPELINE_EXECUTOR="local", PYTHONUNBUFFERED="1")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return {**env, **(extra or {})}

    def start(self, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
        self.begin()
        proc = subprocess.Popen(
            cmd,
            cwd=self.root,  # `python -m` puts it first on sys.path: the sandbox's own code runs
            env=self.env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: signals reach it alone
        )
        self.procs.append(proc)
        return proc

    def stage_cmd(self, name: str) -> list[str]:
        cmd = read_yaml(self.root / "dvc.yaml")["stages"][name]["cmd"]
        return [sys.executable, *cmd.split()[1:]]  # dvc.yaml's `python -m ...` with this interpreter

    def stage(self, name: str, env: dict | None = None) -> Result:
        return finish(self.start(self.stage_cmd(name), env))

    def dvc(self, *args: str, env: dict | None = None) -> Result:
        return finish(self.start([sys.executable, "-m", "dvc", *args], env))

    def params(self, **sections) -> None:
        path = self.root / "params.yaml"
        write_yaml(path, merge(read_yaml(path), sections))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        for stop in self.stops:
            stop()
        self.stops.clear()
        for mount in self.mounts:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        self.mounts.clear()


# ---- what a case leaves behind ------------------------------------------------
def hidden_entries(root: Path) -> set[str]:
    """Hidden files and dirs below the project (not .git/.dvc): where scratch would be."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if rel == Path("."):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        found |= {str(rel / n) for n in dirnames + filenames if n.startswith(".")}
    return found


def untracked(root: Path) -> set[str]:
    done = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True)
    return {line for line in done.stdout.splitlines() if line.startswith("??")}


def aliases(root: Path) -> list | None:
    db = root / "mlflow.db"
    if not db.exists():
        return None
    with sqlite3.connect(db) as con:
        try:
            return sorted(con.execute("select name, alias, version from registered_model_aliases").fetchall())
        except sqlite3.Error:
            return None


def containers(root: Path) -> list[str]:
    """Stage containers of this sandbox and this session's runner containers, running or not."""
    found = []
    for label in (f"cifar100.workdir={root}", f"com.docker.compose.project={COMPOSE_PROJECT}"):
        done = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True)
        found += done.stdout.split() if done.returncode == 0 else []
    return found


def remove_containers(root: Path) -> None:
    """After a Docker case: remove what it left (this session's containers only), so the next starts clean."""
    left = containers(root)
    if left:
        subprocess.run(["docker", "rm", "-f", *left], capture_output=True, timeout=120)


def snapshot(root: Path) -> dict:
    lock = root / "dvc.lock"
    return {
        "hidden": hidden_entries(root),
        "untracked": untracked(root),
        "lock": lock.read_bytes() if lock.exists() else None,
        "aliases": aliases(root),
    }


def _output_faults(exp: Expect) -> list[str]:
    """What is wrong with the exit code and the output: one clear line, the words asked for."""
    out, why = exp.result.out, []
    lines = [ln.strip() for ln in out.replace("\r", "\n").splitlines() if ln.strip() and not PROGRESS.search(ln)]
    complaints = [ln for ln in lines if COMPLAINT.search(ln)]
    dvc_lines = [ln for ln in complaints if ln.startswith(TOOLS)]
    own = [ln for ln in complaints if not ln.startswith(TOOLS)]
    if "Traceback" in out:
        why.append("traceback")
    if exp.rc != 0 and not complaints and len(lines) == 1:  # a one-line refusal in other words
        complaints = own = lines
    if exp.rc == 0:
        if exp.result.rc != 0 or complaints:
            why.append(f"expected success, got rc {exp.result.rc}: {complaints[:2]}")
    else:
        if exp.result.rc == 0 or (exp.rc is not None and exp.result.rc != exp.rc):
            why.append(f"rc {exp.result.rc}, expected {exp.rc or 'non-zero'}")
        if len(own) > 1 or len(dvc_lines) > 1 or not complaints:
            why.append(f"{len(own)} stage complaint lines and {len(dvc_lines)} DVC ERROR lines")
    why += [f"output lacks {w!r}" for w in exp.words if w not in out]
    why += [f"output has {w!r}" for w in exp.absent if w in out]
    return why


def judge(exp: Expect, before: dict, after: dict, root: Path, docker: bool) -> list[str]:
    """The reasons a case is not clean (empty: clean)."""
    why = list(exp.notes) + _output_faults(exp)
    if after["hidden"] - before["hidden"]:
        why.append(f"left {sorted(after['hidden'] - before['hidden'])[:3]}")
    if after["untracked"] - before["untracked"]:
        why.append(f"untracked {sorted(after['untracked'] - before['untracked'])[:3]}")
    if not exp.lock_may_change and after["lock"] != before["lock"]:
        why.append("dvc.lock changed")
    if not exp.aliases_may_change and after["aliases"] != before["aliases"]:
        why.append("MLflow aliases moved")
    if docker and containers(root):
        why.append(f"containers left: {containers(root)}")
    return why


def assert_clean(sb: Sandbox, exp: Expect) -> None:
    """The case's verdict: every process and stand-in stopped, then judged; fails with the reasons."""
    sb.close()
    why = judge(exp, sb.before or {}, snapshot(sb.root), sb.root, sb.docker)
    assert not why, f"unclean: {'; '.join(why)}\n--- output (tail) ---\n{exp.result.out[-1500:]}"


# ---- faults that need the world to misbehave ---------------------------------------
class _Trickle(http.server.BaseHTTPRequestHandler):
    """Announces a big archive and sends a byte every 0.2 s: the download, and so the
    ingest stage, stays busy until it is interrupted (at most 300 s: longer than any case waits)."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 30))
        self.end_headers()
        for _ in range(1500):
            try:
                self.wfile.write(b"\0")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.2)

    def log_message(self, *args):
        pass


def busy_ingest(sb: Sandbox) -> None:
    """params that keep ingest running, downloading from a local trickling server."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sb.stops.append(lambda: (server.shutdown(), server.server_close()))
    url = f"http://127.0.0.1:{server.server_address[1]}/cifar-100-python.tar.gz"
    sb.params(data={"source": "cifar100", "download": {"url": url}})


def scratch(root: Path, name: str) -> bool:
    """A stage's hidden scratch folder (`data/.raw.XXXX`) exists: it is inside its work."""
    return any((root / "data").glob(f".{name}.*"))


def checkpoint(root: Path) -> bool:
    return any((root / "checkpoints").glob("train-*.pt"))
