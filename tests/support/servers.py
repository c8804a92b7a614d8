"""Local stand-ins for the outside world of the remote tests, on 127.0.0.1 only.

- `moto_s3`: moto's S3 server with IAM auth enforced (wrong keys get 403), one
  bucket and one user's access keys: the DVC remote (DagsHub's S3 endpoint).
- `mlflow_servers`: MLflow tracking servers with the basic-auth app, 3.x from
  .venv and 2.22.2 (the last 2.x) from .venv-mlflow2 (`.ci/setup-mlflow2.sh`,
  run here when missing): DagsHub's hosted MLflow, reported to run 2.x.
- `git_origin`: a bare git repository as origin.

Each server gets a free port, a bounded readiness loop and is stopped by its PID
(its process group) when the last test module using it is done. Import the
fixtures into a test module: the servers are shared by every module of a session.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from smoke.servers import Server, free_port, launch, wait_ready

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
MLFLOW2_VENV = ROOT / ".venv-mlflow2"
ADMIN = "admin"


class _Shared:
    """Session-wide servers shared by every module that imports a fixture (pytest makes
    one fixture instance per importing module); the last user stops them."""

    def __init__(self) -> None:
        self.value: object = None
        self.users = 0
        self.stoppers: list = []

    def acquire(self, make):
        if self.users == 0:
            self.value, self.stoppers = make()
        self.users += 1
        return self.value

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            for stop in self.stoppers:
                stop()
            self.value, self.stoppers = None, []


# ---- S3 (moto) ---------------------------------------------------------------
@dataclass
class S3:
    endpoint: str
    bucket: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"

    def client(self, secret: str | None = None):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=secret or self.secret_access_key,
        )

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _start_moto(workdir: Path) -> tuple[S3, list]:
    import boto3

    port = free_port()
    # The first 4 requests go unauthenticated (create user, policy, key, bucket); every later one
    # needs that user's keys, so a wrong key or secret gets 403 as from a real endpoint.
    server = launch(
        "moto",
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        workdir,
        {"INITIAL_NO_AUTH_ACTION_COUNT": "4"},
        f"http://127.0.0.1:{port}",
    )
    wait_ready(server, "/moto-api/")
    try:
        anon = {
            "endpoint_url": server.url,
            "region_name": "us-east-1",
            "aws_access_key_id": "bootstrap",
            "aws_secret_access_key": "bootstrap",
        }
        iam = boto3.client("iam", **anon)
        iam.create_user(UserName="dvc")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="dvc", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="dvc")["AccessKey"]
        boto3.client("s3", **anon).create_bucket(Bucket="dvc")
    except Exception:
        server.stop()
        raise
    return S3(server.url, "dvc", key["AccessKeyId"], key["SecretAccessKey"]), [server.stop]


_moto = _Shared()


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory) -> S3:
    yield _moto.acquire(lambda: _start_moto(tmp_path_factory.mktemp("moto")))
    _moto.release()


# ---- MLflow tracking servers with basic auth -----------------------------------
@dataclass
class Tracking:
    """A running MLflow server: its URI, the admin's credentials, and its MLflow version."""

    label: str
    uri: str
    username: str
    password: str
    version: str
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = {
            "MLFLOW_TRACKING_URI": self.uri,
            "MLFLOW_TRACKING_USERNAME": self.username,
            "MLFLOW_TRACKING_PASSWORD": self.password,
        }


def mlflow2_bin() -> Path | None:
    """.venv-mlflow2's mlflow, set up by .ci/setup-mlflow2.sh if missing; None if that fails."""
    exe = MLFLOW2_VENV / "bin" / "mlflow"
    if not exe.exists():
        done = subprocess.run(
            [str(ROOT / ".ci" / "setup-mlflow2.sh")], cwd=ROOT, capture_output=True, text=True, timeout=900
        )
        if done.returncode:
            return None
    return exe if exe.exists() else None


def _launch_mlflow(label: str, exe: Path, workdir: Path, password: str) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    # The admin password goes in the auth config file, not on the server's command line.
    (workdir / "auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{workdir / 'auth.db'}\n"
        f"admin_username = {ADMIN}\nadmin_password = {password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    port = free_port()
    cmd = [
        str(exe),
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination",
        str(workdir / "artifacts"),
    ]
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(workdir / "auth.ini"),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }  # 3.x's job runner: 7 idle workers we never use
    return launch(f"mlflow-{label}", cmd, workdir, env, f"http://127.0.0.1:{port}")


def _version(server: Server, password: str) -> str:
    auth = b64encode(f"{ADMIN}:{password}".encode()).decode()
    req = urllib.request.Request(server.url + "/version", headers={"Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read().decode().strip()


def _start_mlflow(workdir: Path) -> tuple[dict[str, Tracking | None], list]:
    """Both servers, started side by side (their start-ups overlap)."""
    password = f"pw-{secrets.token_hex(12)}"  # distinctive, so the leak scans can find it anywhere
    exes = {"3": VENV_BIN / "mlflow", "2": mlflow2_bin()}
    servers = {label: _launch_mlflow(label, exe, workdir / label, password) for label, exe in exes.items() if exe}
    try:
        for server in servers.values():
            wait_ready(server, "/health")
    except Exception:
        for server in servers.values():
            server.stop()
        raise
    found = {label: Tracking(label, s.url, ADMIN, password, _version(s, password)) for label, s in servers.items()}
    return {label: found.get(label) for label in exes}, [s.stop for s in servers.values()]


_mlflow = _Shared()


@pytest.fixture(scope="session")
def mlflow_servers(tmp_path_factory) -> dict[str, Tracking | None]:
    """{"3": Tracking, "2": Tracking or None where .venv-mlflow2 could not be set up}."""
    yield _mlflow.acquire(lambda: _start_mlflow(tmp_path_factory.mktemp("mlflow")))
    _mlflow.release()


class ArgvWatch:
    """Samples every process's command line (/proc/*/cmdline) every interval_s while
    active; records those that hold any of `secrets`. Every program here takes over
    100 ms to start, so none slips between two samples."""

    def __init__(self, *secrets: str, interval_s: float = 0.05):
        self.secrets = [s.encode() for s in secrets]
        self.interval_s = interval_s
        self.hits: list[str] = []
        self.seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for path in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    argv = path.read_bytes()
                except OSError:
                    continue
                self.seen += 1
                if any(s in argv for s in self.secrets):
                    self.hits.append(argv.replace(b"\0", b" ").decode(errors="replace"))
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def git_origin(tmp_path) -> Path:
    """An empty bare repository to push to."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    return origin
