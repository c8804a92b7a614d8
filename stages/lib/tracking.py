"""MLflow wiring and provenance: where runs go, and what each run records.

Nothing happens at import. `configure` picks the store: MLFLOW_TRACKING_URI
when set (a team server, DagsHub), else an sqlite store and artifact folder in
the project, so a machine with no account and no network tracks runs too.
Before using a tracking server (http/https), `configure` asks it for its
version: a server that rejects the credentials, cannot be reached or is too
old stops the stage with one line naming the fix, before anything is logged.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from stages.lib.cli import PipelineError

MODEL_TAG = "model_sha256"  # ties evaluate/register to the run that trained the weights
# Registered-model aliases (champion/challenger) arrived in MLflow 2.3. Everything
# else this pipeline asks of a server (runs, metrics, tags, artifacts, registry
# versions created from a run's artifact URI) works on 2.x and 3.x alike; MLflow 3's
# logged-model endpoints, which 2.x servers answer with 404, are never used.
MIN_SERVER = (2, 3)
LOCK_FILE = Path("env/stages.lock")  # the stages' layer of the lock (`make lock`), relative to the project
PROBE_ATTEMPTS = 3  # bounded: 1 try + 2 retries, 1 s then 2 s apart
_server_versions: dict[str, str | None] = {}  # uri -> version, probed once per process


def local_store(root: Path) -> tuple[str, str]:
    """(tracking URI, artifact root URI) of the project-local default store."""
    return f"sqlite:///{root.resolve() / 'mlflow.db'}", (root.resolve() / "mlartifacts").as_uri()


def configure(experiment: str) -> str:
    """Point MLflow at the store and experiment; return the experiment id."""
    import mlflow

    # No tqdm bars from artifact up/downloads: a stage's output is its own lines.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    artifacts = None  # a server decides its own artifact root
    if not uri:
        uri, artifacts = local_store(Path.cwd())
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    exp_id = found.experiment_id if found else mlflow.create_experiment(experiment, artifact_location=artifacts)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def redact(uri: str) -> str:
    """The URI without any user:password@ part, for messages."""
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _reason(exc: Exception) -> str:
    """The gist of a connection failure (requests nests it deep in its message)."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^\"')\]]+)", text) or re.search(
        r"(timed out|certificate verify failed|Name or service not known)", text
    )
    return found.group(1).strip() if found else text.splitlines()[0][:120]


def server_version(uri: str) -> str | None:
    """GET <uri>/version with the client's credentials (MLFLOW_TRACKING_USERNAME/PASSWORD
    or _TOKEN); the version string, or None when the server does not say (no such route)."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    where = redact(uri)
    try:
        resp = http_request(
            get_default_host_creds(uri),
            "/version",
            "GET",
            max_retries=PROBE_ATTEMPTS - 1,
            backoff_factor=1,
            backoff_jitter=0,
            timeout=10,
            raise_on_status=False,
        )
    except MlflowException as exc:
        raise PipelineError(
            f"MLflow server {where} is unreachable after {PROBE_ATTEMPTS} attempts ({_reason(exc)}): "
            "check MLFLOW_TRACKING_URI in .env and that the server is up"
        ) from None
    if resp.status_code in (401, 403):
        raise PipelineError(
            f"MLflow server {where} rejected the credentials (HTTP {resp.status_code}): set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (DagsHub: user and token) in .env"
        )
    if resp.status_code >= 500:
        raise PipelineError(
            f"MLflow server {where} answered HTTP {resp.status_code} after {PROBE_ATTEMPTS} attempts: "
            "retry later, or check the server's logs"
        )
    found = re.fullmatch(r"\s*(\d+)\.(\d+)[\w.+-]*\s*", resp.text) if resp.status_code == 200 else None
    return found.group(0).strip() if found else None


def check_server(uri: str) -> str | None:
    """Probe the server once per process; stop with one line if it cannot serve this pipeline."""
    if uri not in _server_versions:
        version = server_version(uri)
        if version is not None and tuple(int(n) for n in version.split(".")[:2]) < MIN_SERVER:
            need = ".".join(map(str, MIN_SERVER))
            raise PipelineError(
                f"MLflow server {redact(uri)} runs MLflow {version}, which lacks registered-model "
                f"aliases (champion/challenger): this pipeline needs a server >= {need}"
            )
        _server_versions[uri] = version
    return _server_versions[uri]


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state() -> dict[str, str]:
    """Commit and dirtiness of the checkout. The container launcher passes them in
    (PIPELINE_GIT_*), since stage images need no git."""
    commit = os.environ.get("PIPELINE_GIT_COMMIT") or _git("rev-parse", "HEAD")
    dirty = os.environ.get("PIPELINE_GIT_DIRTY")
    if dirty is None:
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = "unknown" if status is None else str(bool(status))
    return {"git.commit": commit or "unknown", "git.dirty": dirty}


def data_hashes(paths: list[str], lock: str | Path = "dvc.lock") -> dict[str, str]:
    """DVC's md5 of each path, as recorded by the stage that produced it in dvc.lock."""
    from stages.lib.params import read_yaml

    found: dict[str, str] = {}
    if Path(lock).is_file():
        for stage in (read_yaml(lock) or {}).get("stages", {}).values():
            for out in stage.get("outs", []):
                found[out["path"]] = out.get("md5", "unknown")
    return {f"data.{p}": found.get(p, "unknown") for p in paths}


def lock_sha256(path: str | Path = LOCK_FILE) -> str:
    """sha256 of the dependency lock the environment was installed from; "missing" without one."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return "missing"


def provenance(data_paths: list[str]) -> dict[str, str]:
    """Tags naming what produced a run. The executor is the one that started the stage:
    runner/launch.py sets PIPELINE_STAGE_EXECUTOR=docker and the image's ID and digest in
    the container (where PIPELINE_EXECUTOR is `local`, since the stage runs in-process there)."""
    tags = git_state()
    tags.update(data_hashes(data_paths))
    tags["executor"] = os.environ.get("PIPELINE_STAGE_EXECUTOR") or "local"
    tags["image.id"] = os.environ.get("PIPELINE_IMAGE_ID", "none")
    tags["image.digest"] = os.environ.get("PIPELINE_IMAGE_DIGEST", "none")
    tags["env.lock_sha256"] = lock_sha256()
    return tags


def find_run(model_sha256: str) -> str | None:
    """Id of the newest run that trained these exact weights, if any."""
    import mlflow

    runs = mlflow.search_runs(
        filter_string=f"tags.{MODEL_TAG} = '{model_sha256}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0].info.run_id if runs else None
