"""The whole pipeline with DagsHub's stand-ins: settings in .env only, `make dagshub`,
`make run-local` logging and registering on an MLflow 3.x basic-auth server, `make push`
to moto's S3, `make git-sync` to a bare origin, then a fresh clone that pulls and finds
nothing to rerun. The password and the S3 secret must show up nowhere but .env,
.dvc/config.local and the servers; a watch samples every process's command line."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY
from tests.e2e.conftest import ran, sandbox
from tests.support.servers import ROOT, ArgvWatch, git_origin, mlflow_servers, moto_s3  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow
EXTRA = (
    "Makefile",
    "pyproject.toml",
    "ops",
    "smoke",
)
MODEL = "cifar100-remote-e2e"


def make(project: Path, target: str, log: list[str], check: bool = True) -> subprocess.CompletedProcess:
    """`make target` with a clean environment: every setting comes from the project's .env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "DAGSHUB_", "DVC_REMOTE"))}
    env.update(
        {
            "GIT_AUTHOR_NAME": "e2e",
            "GIT_AUTHOR_EMAIL": "e2e@localhost",
            "GIT_COMMITTER_NAME": "e2e",
            "GIT_COMMITTER_EMAIL": "e2e@localhost",
        }
    )
    done = subprocess.run(
        ["make", "--no-print-directory", f"VENV={ROOT / '.venv'}", "STAMP=", target],  # the venv as it is
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log.append(done.stdout + done.stderr)
    if check and done.returncode:
        raise AssertionError(f"make {target} failed:\n{done.stdout}\n{done.stderr}")
    return done


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def dotenv(project: Path, **values: str) -> None:
    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def digests(root: Path) -> dict[str, str]:
    files = [p for d in ("data", "models") for p in sorted((root / d).rglob("*")) if p.is_file()]
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def flow(tmp_path_factory, mlflow_servers, moto_s3):  # noqa: F811
    """One project taken through dagshub -> run-local -> push -> git-sync; the checks below share it."""
    server = mlflow_servers["3"]
    base = tmp_path_factory.mktemp("remote-e2e")
    root = sandbox(base, {**TINY, "register": {"model_name": MODEL}})
    for name in EXTRA:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, root / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, root / name)
    git(root, "add", *EXTRA)
    # --allow-empty: the sandbox may already hold them all
    git(
        root,
        "-c",
        "user.name=e2e",
        "-c",
        "user.email=e2e@localhost",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "make targets",
    )
    origin = base / "origin.git"
    branch = git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    git(base, "init", "-q", "--bare", "-b", branch, str(origin))  # its HEAD names the branch git-sync pushes
    git(root, "remote", "add", "origin", str(origin))
    settings = {
        **server.env,
        "DVC_REMOTE_URL": f"s3://{moto_s3.bucket}/e2e",
        "AWS_ENDPOINT_URL": moto_s3.endpoint,
        "AWS_ACCESS_KEY_ID": moto_s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": moto_s3.secret_access_key,
        "AWS_DEFAULT_REGION": moto_s3.region,
    }
    dotenv(root, **settings)
    secrets = (server.password, moto_s3.secret_access_key)
    log: list[str] = []
    with ArgvWatch(*secrets) as watch:
        for target in ("dagshub", "run-local", "push", "git-sync"):
            make(root, target, log)
    return {
        "root": root,
        "origin": origin,
        "server": server,
        "settings": settings,
        "secrets": secrets,
        "log": log,
        "argv_hits": watch.hits,
        "argv_seen": watch.seen,
        "base": base,
    }


def test_the_pipeline_ran_and_registered_on_the_server(flow):
    import mlflow
    from mlflow import MlflowClient

    assert ran(flow["log"][1]) == ["ingest", "validate", "preprocess", "train", "evaluate", "profile", "register"]
    assert "mlflow-check: " in flow["log"][1] and flow["server"].version in flow["log"][1]
    server = flow["server"]
    os.environ.update(server.env)
    try:
        mlflow.set_tracking_uri(server.uri)
        version = MlflowClient().get_model_version_by_alias(MODEL, "champion")
        model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    finally:
        for key in server.env:
            os.environ.pop(key, None)
    assert version.version == "1" and sorted(version.aliases) == ["challenger", "champion"]
    images = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    assert model.predict(images).shape == (4, 100)


def test_no_secret_anywhere_but_env_and_config_local(flow):
    import mlflow
    from mlflow import MlflowClient

    root, server = flow["root"], flow["server"]
    assert flow["argv_seen"] > 0 and flow["argv_hits"] == []
    texts = {"output": "\n".join(flow["log"])}
    for name in ("dvc.lock", "params.yaml", ".dvc/config", "reports/registry.json", "reports/metrics.json"):
        texts[name] = (root / name).read_text()
    texts["origin"] = git(flow["origin"], "log", "-p", "--all")
    os.environ.update(server.env)
    try:
        mlflow.set_tracking_uri(server.uri)
        client = MlflowClient()
        for run in mlflow.search_runs(search_all_experiments=True, output_format="list"):
            texts[f"run {run.info.run_id}"] = repr(run.data.params) + repr(run.data.tags)
        for mv in client.search_model_versions(f"name = '{MODEL}'"):
            texts[f"version {mv.version}"] = repr(mv.tags) + mv.source
    finally:
        for key in server.env:
            os.environ.pop(key, None)
    for secret in flow["secrets"]:
        leaks = [where for where, text in texts.items() if secret in text]
        assert leaks == [], f"a secret leaked into {leaks}"
    assert flow["secrets"][1] in (root / ".dvc" / "config.local").read_text()
    assert ".env" not in git(flow["origin"], "ls-tree", "-r", "--name-only", "HEAD").split()


def test_a_fresh_clone_pulls_everything_and_repro_has_nothing_to_do(flow):
    clone = flow["base"] / "clone"
    git(flow["base"], "clone", "-q", str(flow["origin"]), str(clone))
    dotenv(clone, **flow["settings"])
    log: list[str] = []
    make(clone, "dagshub", log)
    make(clone, "pull", log)
    assert digests(clone) == digests(flow["root"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    again = subprocess.run(
        [sys.executable, "-m", "dvc", "repro"], cwd=clone, env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0 and ran(again.stdout) == []
    assert (clone / "dvc.lock").read_text() == (flow["root"] / "dvc.lock").read_text()


def test_wrong_mlflow_password_stops_before_any_output_is_touched(flow):
    root = flow["root"]
    dotenv(root, **{**flow["settings"], "MLFLOW_TRACKING_PASSWORD": "wrong-password"})
    code = root / "stages" / "register.py"
    raw = code.read_text()
    code.write_text(raw + "\n# changed\n")  # the register stage must rerun: dvc would delete its outputs first
    lock, before = (root / "dvc.lock").read_text(), digests(root)
    registry = (root / "reports" / "registry.json").read_text()
    try:
        done = make(root, "run-local", [], check=False)
    finally:
        code.write_text(raw)
        dotenv(root, **flow["settings"])
    assert done.returncode != 0
    errors = [ln for ln in (done.stdout + done.stderr).splitlines() if ": error: " in ln]
    assert len(errors) == 1 and "rejected the credentials (HTTP 401)" in errors[0]
    assert "Running stage" not in done.stdout
    assert (root / "dvc.lock").read_text() == lock and digests(root) == before
    assert (root / "reports" / "registry.json").read_text() == registry


def test_wrong_s3_secret_fails_the_push_with_one_line(flow):
    root = flow["root"]
    dotenv(root, **{**flow["settings"], "AWS_SECRET_ACCESS_KEY": "wrong-secret-wrong-secret"})
    before = digests(root)
    try:
        make(root, "dagshub", [])
        done = make(root, "push", [], check=False)
    finally:
        dotenv(root, **flow["settings"])
        make(root, "dagshub", [])
    assert done.returncode != 0
    errors = [ln for ln in (done.stdout + done.stderr).splitlines() if ": error: " in ln]
    assert len(errors) == 1 and "rejected the credentials" in errors[0] and "make dagshub" in errors[0]
    assert digests(root) == before
