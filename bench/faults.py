"""Claim: every fault of issue 12 ends in one line and leaves nothing behind (goal: clean = faults >= 30).

Method: one tiny sandbox (smoke/sandbox.py: synthetic 4+2 images per class, small
net, 2 epochs) is taken through `dvc repro` once; each case then gets its own copy,
injects its fault (bad archive or params, broken data, a signal, a full disk, an
unreachable MLflow, a corrupt DVC cache object, ...), runs the stage (directly, as
dvc.yaml's cmd does) or `dvc`, and checks the result. A case is clean when
- its output holds no traceback and at most one complaint from the stage (plus at
  most DVC's own one-line `ERROR:` summary), and the expected exit code and words;
- it leaves nothing behind: no new hidden scratch entries (`data/.raw.XXXX`, temp
  files), no new untracked files in `git status`, an unchanged dvc.lock and
  unchanged MLflow aliases (unless the case is meant to change them), and no stage
  container left (Docker cases).
Docker cases skip, with the reason, where no daemon answers or no image is built.
Prints one JSON line: faults, clean, unclean (names), skipped ({name: reason}), seconds.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from smoke.sandbox import SMOKE_OVERRIDES, make_sandbox, merge

ROOT = Path(__file__).resolve().parent.parent

TINY = {
    **SMOKE_OVERRIDES,
    "data": merge(SMOKE_OVERRIDES["data"], {"synthetic": {"train_per_class": 4, "test_per_class": 2}}),
    "preprocess": {"val_fraction": 0.25},
    "validate": {"max_train_test_duplicates": 0},
    "recipes": {"fast": {**SMOKE_OVERRIDES["recipes"]["fast"], "epochs": 2}},
}
SLOW_INGEST = {"source": "synthetic", "synthetic": {"train_per_class": 300, "test_per_class": 50}}
CASE_TIMEOUT_S = 240
COMPLAINT = re.compile(r"error|exception|traceback|interrupted|killed|failed", re.IGNORECASE)
PROGRESS = re.compile(r"\d+%\|")  # tqdm bars


class Skip(Exception):
    """The case cannot run here (no Docker daemon, no tmpfs mount); the reason is reported."""


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


class Sandbox:
    """One case's copy of the prepared project."""

    def __init__(self, root: Path):
        self.root = root
        self.procs: list[subprocess.Popen] = []
        self.mounts: list[Path] = []
        self.servers: list = []  # local stand-in servers, shut down by close()
        self.before: dict | None = None  # taken when the first command starts: after the injection

    def env(self, extra: dict | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
        env.update(PIPELINE_EXECUTOR="local", PYTHONPATH=str(self.root), PYTHONUNBUFFERED="1")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return {**env, **(extra or {})}

    def start(self, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
        if self.before is None:
            self.before = snapshot(self.root)
        proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=self.env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: signals reach it alone
        )
        self.procs.append(proc)
        return proc

    def stage_cmd(self, name: str) -> list[str]:
        from ruamel.yaml import YAML

        cmd = YAML(typ="safe", pure=True).load((self.root / "dvc.yaml").read_text())["stages"][name]["cmd"]
        return [sys.executable, *cmd.split()[1:]]  # `python -m stages ...` with this interpreter

    def stage(self, name: str, env: dict | None = None) -> Result:
        return finish(self.start(self.stage_cmd(name), env))

    def dvc(self, *args: str, env: dict | None = None) -> Result:
        return finish(self.start([sys.executable, "-m", "dvc", *args], env))

    def params(self, **sections) -> None:
        from ruamel.yaml import YAML

        yaml = YAML(typ="safe", pure=True)
        path = self.root / "params.yaml"
        raw = merge(yaml.load(path.read_text()), sections)
        with open(path, "w") as f:
            yaml.dump(raw, f)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers.clear()
        for mount in self.mounts:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def finish(proc: subprocess.Popen, timeout: float = CASE_TIMEOUT_S) -> Result:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out += f"\n(bench: killed after {timeout} s)"
    return Result(proc.returncode, out)


def wait_for(what: Callable[[], bool], proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the process ended (rc {proc.returncode}) or timed out before the fault point")
        time.sleep(0.02)


# ---- what a case leaves behind ------------------------------------------------
SKIP_DIRS = {".git", ".dvc"}


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
    """Stage containers of this sandbox and this bench's runner containers, running or not."""
    found = []
    for label in (f"cifar100.workdir={root}", f"com.docker.compose.project=faults{os.getpid()}"):
        done = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True)
        found += done.stdout.split() if done.returncode == 0 else []
    return found


def remove_containers(root: Path) -> None:
    """After a Docker case: remove what it left (this bench's containers only), so the next starts clean."""
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


def judge(exp: Expect, before: dict, after: dict, root: Path, docker: bool) -> list[str]:
    """The reasons a case is not clean (empty: clean)."""
    out, why = exp.result.out, list(exp.notes)
    lines = [ln.strip() for ln in out.replace("\r", "\n").splitlines() if ln.strip() and not PROGRESS.search(ln)]
    complaints = [ln for ln in lines if COMPLAINT.search(ln)]
    tools = ("ERROR:", "make: ***")  # DVC's and make's one-line summaries of a failed command
    dvc_lines = [ln for ln in complaints if ln.startswith(tools)]
    own = [ln for ln in complaints if not ln.startswith(tools)]
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


def _yaml(path: Path):
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(path.read_text())


def _dump(path: Path, raw) -> None:
    from ruamel.yaml import YAML

    with open(path, "w") as f:
        YAML(typ="safe", pure=True).dump(raw, f)


# ---- archives ---------------------------------------------------------------------
def _md5(path: Path) -> str:
    import hashlib

    return hashlib.md5(path.read_bytes()).hexdigest()


def _good_archive(sb: Sandbox, level: int = 6) -> Path:
    """A real-layout tarball of the sandbox's own raw data."""
    path = sb.root / "cifar-100-python.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=level) as tar:
        tar.add(sb.root / "data" / "raw" / "cifar-100-python", arcname="cifar-100-python")
    return path


def _archive_case(sb: Sandbox, path: Path, md5: str | None = None, **expect) -> Expect:
    sb.params(data={"source": "archive", "archive": {"path": str(path.relative_to(sb.root)), "md5": md5}})
    return Expect(sb.stage("ingest"), **expect)


def archive_missing(sb):
    return _archive_case(sb, sb.root / "nope.tar.gz", "0" * 32, words=("file not found",))


def archive_is_directory(sb):  # item 10
    (sb.root / "adir.tar.gz").mkdir()
    return _archive_case(sb, sb.root / "adir.tar.gz", "0" * 32, words=("directory",), absent=("file not found",))


def archive_not_a_tarball(sb):
    junk = sb.root / "junk.tar.gz"
    junk.write_bytes(b"not a tarball at all")
    return _archive_case(sb, junk, _md5(junk), words=("cannot be unpacked",))


def archive_wrong_md5(sb):
    good = _good_archive(sb)
    return _archive_case(sb, good, "0" * 32, words=("md5 is",))


def archive_truncated(sb):
    good = _good_archive(sb)
    good.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return _archive_case(sb, good, _md5(good), words=("cannot be unpacked",))


def archive_corrupt_crc(sb):  # item 5: a changed byte that still inflates; md5 taken from the corrupt file
    good = _good_archive(sb, level=0)
    body = bytearray(good.read_bytes())
    body[len(body) // 2] ^= 0xFF
    good.write_bytes(bytes(body))
    return _archive_case(sb, good, _md5(good), words=("CRC",))


def archive_without_cifar_dir(sb):
    path = sb.root / "other.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(sb.root / "params.yaml", arcname="other/params.yaml")
    return _archive_case(sb, path, _md5(path), words=("holds no cifar-100-python",))


def md5_wrong_length(sb):  # item 11: refused when params are read, before hashing
    good = _good_archive(sb)
    return _archive_case(sb, good, _md5(good)[:31], words=("data.archive.md5",), absent=("md5 is",))


def md5_upper_case(sb):  # item 11: a correct md5 in upper case is accepted
    good = _good_archive(sb)
    return _archive_case(sb, good, _md5(good).upper(), rc=0)


def download_unreachable(sb):
    sb.params(data={"source": "cifar100", "download": {"url": "http://127.0.0.1:9/cifar-100-python.tar.gz"}})
    return Expect(sb.stage("ingest"), words=("download of",))


# ---- params -------------------------------------------------------------------------
def params_unknown_key(sb):  # item 12: `make run-local` (as `make run`) names the misspelt key before DVC templates
    raw = _yaml(sb.root / "params.yaml")
    raw["train"]["recipee"] = raw["train"].pop("recipe")
    _dump(sb.root / "params.yaml", raw)
    venv = Path(sys.executable).parent.parent  # this interpreter's venv, already installed
    return Expect(
        finish(sb.start(["make", "--no-print-directory", f"VENV={venv}", "STAMP=", "run-local"])), words=("recipee",)
    )


def params_not_yaml(sb):
    (sb.root / "params.yaml").write_text("data: [unclosed\n")
    return Expect(sb.stage("ingest"), words=("params.yaml",))


def params_wrong_type(sb):
    sb.params(recipes={"fast": {"epochs": "ten"}})
    return Expect(sb.stage("train"), words=("epochs",))


def params_out_of_range(sb):
    sb.params(preprocess={"val_fraction": 1.5})
    return Expect(sb.stage("preprocess"), words=("val_fraction",))


def params_unknown_recipe(sb):
    sb.params(train={"recipe": "nope"})
    return Expect(sb.dvc("repro"), words=("nope",))


def executor_unknown(sb):
    return Expect(sb.stage("ingest", env={"PIPELINE_EXECUTOR": "kubernetes"}), words=("PIPELINE_EXECUTOR",))


# ---- data that fails validation (item 9) ----------------------------------------
def _edit_raw(sb: Sandbox, change: Callable) -> None:
    from stages.lib import dataset

    root = sb.root / "data" / "raw"
    ds = dataset.read_raw(root)
    shutil.rmtree(root)  # DVC may have linked it to the cache: never write through a link
    dataset.write_raw(root, change(ds))


def _with_train(ds, **changes):
    import dataclasses

    return dataclasses.replace(ds, train=dataclasses.replace(ds.train, **changes))


def validate_label_out_of_range(sb):
    def bad(ds):
        fine = ds.train.fine.copy()
        fine[123] = 100
        return _with_train(ds, fine=fine)

    _edit_raw(sb, bad)
    return Expect(sb.stage("validate"), words=("fine_labels[123] = 100, outside 0..99",))


def validate_fine_two_coarse(sb):
    def bad(ds):
        coarse = ds.train.coarse.copy()
        coarse[(ds.train.fine == 7).nonzero()[0][1]] = (ds.train.coarse[ds.train.fine == 7][0] + 1) % 20
        return _with_train(ds, coarse=coarse)

    _edit_raw(sb, bad)
    return Expect(sb.stage("validate"), words=("fine label 7", "train["))


def validate_missing_class(sb):
    def bad(ds):
        keep = ds.train.fine != 42
        return _with_train(ds, images=ds.train.images[keep], fine=ds.train.fine[keep], coarse=ds.train.coarse[keep])

    _edit_raw(sb, bad)
    return Expect(sb.stage("validate"), words=("class 42",))


def validate_constant_images(sb):
    def bad(ds):
        images = ds.train.images.copy()
        images[[5, 17]] = 128
        return _with_train(ds, images=images)

    _edit_raw(sb, bad)
    return Expect(sb.stage("validate"), words=("constant images at 5, 17",))


def raw_data_missing(sb):
    shutil.rmtree(sb.root / "data" / "raw")
    return Expect(sb.stage("preprocess"), words=("file not found",))


def processed_truncated(sb):
    path = sb.root / "data" / "processed" / "train_x.npy"
    data = path.read_bytes()
    path.unlink()  # may be a link into the DVC cache
    path.write_bytes(data[: len(data) // 2])
    return Expect(sb.stage("train"), words=("train_x.npy",))


# ---- signals (items 6, 7) --------------------------------------------------------
def _scratch(root: Path, name: str) -> bool:
    return any((root / "data").glob(f".{name}.*"))


def _signal_ingest(sb: Sandbox, sig: signal.Signals, code: int) -> Expect:
    # A trickling download, not SLOW_INGEST's few seconds of work: on a loaded machine the
    # signal once came after the stage had finished (rc 0), and the case tested nothing.
    _busy_ingest(sb)
    proc = sb.start(sb.stage_cmd("ingest"))
    wait_for(lambda: _scratch(sb.root, "raw"), proc)
    os.killpg(proc.pid, sig)
    return Expect(finish(proc), rc=code, words=(f"interrupted by {sig.name}",))


def sigterm_ingest(sb):
    return _signal_ingest(sb, signal.SIGTERM, 143)


def sigint_ingest(sb):
    return _signal_ingest(sb, signal.SIGINT, 130)


def sighup_ingest(sb):
    return _signal_ingest(sb, signal.SIGHUP, 129)


def sigkill_ingest_then_rerun(sb):
    sb.params(data=SLOW_INGEST)
    proc = sb.start(sb.stage_cmd("ingest"))
    wait_for(lambda: _scratch(sb.root, "raw"), proc)
    os.killpg(proc.pid, signal.SIGKILL)
    finish(proc)
    sb.params(data=TINY["data"])
    return Expect(sb.stage("ingest"), rc=0)  # and the judge finds no scratch left


def _checkpoint(root: Path) -> bool:
    return any((root / "checkpoints").glob("train-*.pt"))


def _signal_train(sb: Sandbox, sig: signal.Signals, code: int, epochs: int = 30) -> Expect:
    sb.params(recipes={"fast": {"epochs": epochs}})
    proc = sb.start(sb.stage_cmd("train"))
    wait_for(lambda: _checkpoint(sb.root), proc, timeout=180)
    os.killpg(proc.pid, sig)
    first = finish(proc)
    exp = Expect(first, rc=code, words=(f"interrupted by {sig.name}", "resumes"))
    if not _checkpoint(sb.root):
        exp.notes.append("no checkpoint left to resume from")
    return exp


def sigint_train_then_resume(sb):
    exp = _signal_train(sb, signal.SIGINT, 130, epochs=4)  # interrupted in epoch 2 of 4
    again = sb.stage("train")
    if again.rc or "resuming after epoch" not in again.out:
        exp.notes.append(f"the rerun did not resume (rc {again.rc})")
    return exp


def sigterm_train(sb):
    return _signal_train(sb, signal.SIGTERM, 143)


# ---- I/O faults (item 8) -------------------------------------------------------------
def _file_where_dir(sb, name: str, stage: str, words: tuple, absent: tuple = ()) -> Expect:
    """A file where the stage's output folder `name` must be; the injected file itself is not a leftover."""
    shutil.rmtree(sb.root / name, ignore_errors=True)
    (sb.root / name).write_text("")
    exp = Expect(sb.stage(stage), words=words, absent=absent)
    (sb.root / name).unlink()
    return exp


def checkpoints_is_file(sb):
    return _file_where_dir(sb, "checkpoints", "train", ("checkpoints", "ENOTDIR"), absent=("epoch 1/",))


def data_is_file(sb):
    return _file_where_dir(sb, "data", "ingest", ("data", "errno"))


def reports_is_file(sb):
    return _file_where_dir(sb, "reports", "validate", ("reports", "errno"))


def disk_full_checkpoints(sb):
    """A 64 KiB tmpfs as checkpoints/: the first epoch's checkpoint does not fit (ENOSPC)."""
    ckpt = sb.root / "checkpoints"
    ckpt.mkdir(exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(ckpt)], capture_output=True)
    if mounted.returncode:
        raise Skip("cannot mount a small tmpfs here (needs root): " + mounted.stderr.decode().strip()[:80])
    sb.mounts.append(ckpt)
    exp = Expect(sb.stage("train"), words=("ENOSPC", "checkpoints/"))
    left = list(ckpt.iterdir())
    if left:
        exp.notes.append(f"left on the full disk: {[p.name for p in left]}")
    return exp


# ---- MLflow and DVC --------------------------------------------------------------------
def mlflow_unreachable(sb):
    from smoke.servers import free_port

    return Expect(sb.stage("train", env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}), words=("MLflow",))


def two_run_locals(sb):
    """A second `dvc repro` while the first holds DVC's lock is refused in one line."""
    _busy_ingest(sb)  # the first stays in ingest until interrupted, however slow the second is
    first = sb.start([sys.executable, "-m", "dvc", "repro", "ingest"])
    wait_for(lambda: _scratch(sb.root, "raw"), first)
    second = sb.dvc("repro")
    os.killpg(first.pid, signal.SIGINT)
    finish(first)
    return Expect(second, words=("lock",), lock_may_change=True)


def dvc_cache_corrupt(sb):
    """A corrupted cache object of data/processed is detected, not checked out silently as good."""
    lock = json.loads(json.dumps(_yaml(sb.root / "dvc.lock")))
    out = next(o for o in lock["stages"]["preprocess"]["outs"] if o["path"] == "data/processed")
    obj = sb.root / ".dvc" / "cache" / "files" / "md5" / out["md5"][:2] / out["md5"][2:]
    listing = json.loads(obj.read_text())
    entry = next(e for e in listing if e["relpath"] == "train_y.npy")
    target = sb.root / ".dvc" / "cache" / "files" / "md5" / entry["md5"][:2] / entry["md5"][2:]
    os.chmod(target, 0o644)
    target.write_bytes(target.read_bytes()[:-8] + b"\0" * 8)
    shutil.rmtree(sb.root / "data" / "processed")
    sb.dvc("checkout", "data/processed")
    status = sb.dvc("status")  # exits 0 while naming the damage: a plain success that says so
    return Expect(status, rc=0, words=("not in cache:       data/processed",))


class _RefusingRegistry(http.server.BaseHTTPRequestHandler):
    """A stand-in for DagsHub's hosted MLflow: forwards to a real MLflow server, but answers
    404 "Model Registry features are not supported" to registered-models/create."""

    upstream = ""

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0].endswith("/registered-models/create"):
            self._answer(404, b'{"message": "Model Registry features are not supported"}', "application/json")
            return
        req = urllib.request.Request(self.upstream + self.path, data=body or None, method=self.command)
        for name in ("Content-Type", "Authorization"):
            if self.headers.get(name):
                req.add_header(name, self.headers[name])
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                self._answer(resp.status, resp.read(), resp.headers.get("Content-Type", "application/json"))
        except urllib.error.HTTPError as exc:
            self._answer(exc.code, exc.read(), exc.headers.get("Content-Type", "application/json"))

    def _answer(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _relay

    def log_message(self, *args):
        pass


def _mlflow_server(sb: Sandbox) -> str:
    """A real MLflow server over the sandbox's own store; its URL once it answers."""
    from smoke.servers import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{sb.root / 'mlflow.db'}"]
    cmd += ["--default-artifact-root", str(sb.root / "mlartifacts"), "--no-serve-artifacts"]
    proc = sb.start(cmd, env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    wait_for(up, proc, timeout=180)
    return url


def registry_refuses_404(sb):  # item 13: one line saying so and what to do; the model stays logged
    upstream = _mlflow_server(sb)
    handler = type("Refusing", (_RefusingRegistry,), {"upstream": upstream})
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    proxy.daemon_threads = True
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    sb.servers.append(proxy)
    sb.params(register={"model_name": "faults-refused"})  # a model the store does not hold yet
    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{proxy.server_address[1]}"}
    return Expect(sb.stage("register", env=env), words=("not supported",))


def register_same_weights_again(sb):  # item 14
    exp = Expect(sb.dvc("repro", "-f", "-s", "register"), rc=0)
    if (sb.root / "checkpoints").is_dir() and not any((sb.root / "checkpoints").iterdir()):
        exp.notes.append("an empty checkpoints/ is left")
    return exp


# ---- under Docker (items 1-4; Ctrl-C and docker kill during train) ----------------
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


def _busy_ingest(sb: Sandbox) -> None:
    """params that keep ingest running, downloading from a local trickling server."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sb.servers.append(server)
    url = f"http://127.0.0.1:{server.server_address[1]}/cifar-100-python.tar.gz"
    sb.params(data={"source": "cifar100", "download": {"url": url}})


def _docker_env(sb: Sandbox) -> dict:
    """Environment for `make run` in the sandbox; Skip where it cannot run."""
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode:
        raise Skip("no Docker daemon answers")
    base = os.environ.get("BASE_IMAGE") or ""
    env = {"BASE_IMAGE": base} if base else {}
    env["COMPOSE_PROJECT_NAME"] = f"faults{os.getpid()}"
    make = ["make", "-s", "print-stage-image"]
    got = subprocess.run(make, cwd=sb.root, env=sb.env(env), capture_output=True, text=True)
    image = got.stdout.strip()
    if not image or subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
        raise Skip(f"stage image {image or '?'} not built (make build BASE_IMAGE=...; BASE_IMAGE={base or 'unset'})")
    return env


def _stage_containers(sb: Sandbox, stage: str) -> list[str]:
    done = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=cifar100.stage={stage}"]
        + ["--filter", f"label=cifar100.workdir={sb.root}"],
        capture_output=True,
        text=True,
    )
    return done.stdout.split()


def _make_run(sb: Sandbox, env: dict) -> subprocess.Popen:
    return sb.start(["make", "run"], env=env)


def _ingest_running(sb: Sandbox, env: dict) -> subprocess.Popen:
    _busy_ingest(sb)
    proc = _make_run(sb, env)
    wait_for(lambda: _scratch(sb.root, "raw") and _stage_containers(sb, "ingest"), proc, timeout=180)
    return proc


def _train_running(sb: Sandbox, env: dict) -> subprocess.Popen:
    sb.params(recipes={"fast": {"epochs": 30}})  # a new fingerprint: train (alone, with what follows) reruns
    proc = _make_run(sb, env)
    wait_for(lambda: _checkpoint(sb.root) and _stage_containers(sb, "train"), proc, timeout=240)
    return proc


def docker_two_runs(sb):  # item 1: the second `make run` is refused in one line naming the first
    env = _docker_env(sb)
    first = _ingest_running(sb, env)
    # A refusal takes seconds when idle; on a loaded 2-core machine starting its runner container
    # (compose, then the guard) is slow, and the old 45 s bound made the case flaky. A second run
    # that is not refused would hang here (the first's ingest trickles on), and fail the words.
    second = finish(_make_run(sb, env), timeout=180)
    os.killpg(first.pid, signal.SIGINT)
    finish(first, timeout=120)
    after = sb.dvc("status")  # a killed or finished runner's lock must not block host-side dvc
    exp = Expect(second, words=("another `make run` is running",))
    if "lock" in after.out.lower() and after.rc:
        exp.notes.append("host-side `dvc status` blocked by a stale lock")
    return exp


def docker_sighup(sb):  # item 2: closing the terminal stops the stage container too
    env = _docker_env(sb)
    proc = _ingest_running(sb, env)
    os.killpg(proc.pid, signal.SIGHUP)
    exp = Expect(finish(proc, timeout=120))
    time.sleep(2)  # a container outliving its runner would still be listed now
    return exp


def docker_credentials(sb):  # item 3: a stage gets only the credentials it uses
    secrets = {"MLFLOW_TRACKING_PASSWORD": "faults-secret-pw", "AWS_SECRET_ACCESS_KEY": "faults-secret-key"}
    env = {**_docker_env(sb), **secrets}
    proc = _ingest_running(sb, env)
    leaks = []
    for cid in _stage_containers(sb, "ingest") + _runner_containers(env):
        shown = subprocess.run(["docker", "inspect", cid], capture_output=True, text=True).stdout
        leaks += [f"{name} readable in {cid[:12]}" for name, value in secrets.items() if value in shown]
    os.killpg(proc.pid, signal.SIGINT)
    exp = Expect(finish(proc, timeout=120))
    exp.notes += leaks
    return exp


def _runner_containers(env: dict) -> list[str]:
    label = f"label=com.docker.compose.project={env['COMPOSE_PROJECT_NAME']}"
    return subprocess.run(["docker", "ps", "-q", "--filter", label], capture_output=True, text=True).stdout.split()


def docker_ctrl_c_train(sb):  # Ctrl-C during train: one line naming the stage, no container
    env = _docker_env(sb)
    sb.params(recipes={"fast": {"epochs": 30}})
    proc = _make_run(sb, env)
    wait_for(lambda: _stage_containers(sb, "train"), proc, timeout=240)
    time.sleep(5)  # inside the stage's work, not its start
    os.killpg(proc.pid, signal.SIGINT)
    return Expect(finish(proc, timeout=120), words=("train", "resum"))


def docker_kill_train(sb):  # item 4: `docker kill` of the stage says which stage and that a rerun resumes
    env = _docker_env(sb)
    proc = _train_running(sb, env)
    for cid in _stage_containers(sb, "train"):
        subprocess.run(["docker", "kill", cid], capture_output=True)
    return Expect(finish(proc, timeout=120), words=("train", "resum"))


CASES: dict[str, Callable[[Sandbox], Expect]] = {
    f.__name__: f
    for f in (
        archive_missing,
        archive_is_directory,
        archive_not_a_tarball,
        archive_wrong_md5,
        archive_truncated,
        archive_corrupt_crc,
        archive_without_cifar_dir,
        md5_wrong_length,
        md5_upper_case,
        download_unreachable,
        params_unknown_key,
        params_not_yaml,
        params_wrong_type,
        params_out_of_range,
        params_unknown_recipe,
        executor_unknown,
        validate_label_out_of_range,
        validate_fine_two_coarse,
        validate_missing_class,
        validate_constant_images,
        raw_data_missing,
        processed_truncated,
        sigterm_ingest,
        sigint_ingest,
        sighup_ingest,
        sigkill_ingest_then_rerun,
        sigint_train_then_resume,
        sigterm_train,
        checkpoints_is_file,
        data_is_file,
        reports_is_file,
        disk_full_checkpoints,
        mlflow_unreachable,
        two_run_locals,
        dvc_cache_corrupt,
        register_same_weights_again,
        registry_refuses_404,
        docker_two_runs,
        docker_sighup,
        docker_credentials,
        docker_ctrl_c_train,
        docker_kill_train,
    )
}
DOCKER_CASES = {name for name in CASES if name.startswith("docker_")}


def prepare(work: Path, store: Path) -> None:
    """The tiny sandbox after one whole `dvc repro`, kept at `store`. Every case runs in a
    copy of it at `work`, the path it was made at (MLflow's store holds absolute paths)."""
    make_sandbox(work, TINY)
    done = Sandbox(work).dvc("repro")
    if done.rc:
        raise SystemExit(f"faults: preparing the sandbox failed:\n{done.out[-2000:]}")
    shutil.copytree(work, store, symlinks=True)


def run_case(name: str, store: Path, work: Path, verbose: bool) -> tuple[list[str] | None, str]:
    """(reasons it is unclean, or None if skipped; skip reason or the output's tail)."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(store, work, symlinks=True)
    sb = Sandbox(work)
    docker = name in DOCKER_CASES
    started = time.perf_counter()
    try:
        exp = CASES[name](sb)
        sb.close()
        why = judge(exp, sb.before or {}, snapshot(work), work, docker)
        tail = exp.result.out[-1500:]
    except Skip as exc:
        return None, str(exc)
    except Exception as exc:  # a case that cannot even inject its fault counts as unclean
        why, tail = [f"bench case failed: {exc!r}"], ""
    finally:
        sb.close()
        if docker:
            remove_containers(work)
    if verbose:
        took = time.perf_counter() - started
        print(f"{name} ({took:.0f} s): {'clean' if not why else why}\n{tail if why else ''}", file=sys.stderr)
    return why, tail


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", help="run only these (default: all)")
    ap.add_argument("--prepared", type=Path, help="a folder to keep the prepared sandbox in and reuse (development)")
    ap.add_argument("-v", "--verbose", action="store_true", help="each case's verdict (and output) on stderr")
    args = ap.parse_args()
    names = args.cases or list(CASES)
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        ap.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    # Started in the background (`... &` from a script), this process and so every child ignores
    # SIGINT, and a shell (runner/compose-run.sh) cannot trap a signal ignored at its start: the
    # Ctrl-C cases would test nothing. Children get a terminal's disposition: SIGINT at default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    began = time.perf_counter()
    (ROOT / ".smoke").mkdir(exist_ok=True)
    parent = args.prepared or Path(tempfile.mkdtemp(prefix="faults-", dir=ROOT / ".smoke"))
    work, store = parent / "work", parent / "prepared"
    unclean, skipped = [], {}
    try:
        if not store.is_dir():
            prepare(work, store)
        for name in names:
            why, detail = run_case(name, store, work, args.verbose)
            if why is None:
                skipped[name] = detail
            elif why:
                unclean.append(name)
    finally:
        shutil.rmtree(work if args.prepared else parent, ignore_errors=True)
    tried = len(names) - len(skipped)
    figure = {"faults": tried, "clean": tried - len(unclean), "unclean": unclean, "skipped": skipped}
    print(json.dumps({**figure, "seconds": round(time.perf_counter() - began, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
