"""`make push` / `make pull` / `make mlflow-check`: move the pipeline's data to and from its remotes.

push: `dvc push --run-cache` to the default DVC remote (a local folder until
`make dagshub`): every DVC-tracked output in dvc.lock plus the run-cache, so
others can pull results and `dvc repro` can restore earlier runs. DVC uploads
content-addressed files and skips what the remote has, so rerunning a push that
was cut off sends only the rest.
pull: `dvc pull --run-cache`: on a fresh clone it restores every output dvc.lock
names, after which `dvc repro` has nothing to do.
check: when MLFLOW_TRACKING_URI is a server, ask it for its version with the
configured credentials, so a wrong password stops before `dvc repro` deletes a
stage's outputs to rerun it.

Unreachable remotes are retried (REMOTE_ATTEMPTS, default 3; waits of
REMOTE_RETRY_DELAY_S, 2 s, doubling); an attempt that takes over REMOTE_ATTEMPT_TIMEOUT_S
(default 3600; the automation sets AUTOMATION_REMOTE_TIMEOUT_S, 120) counts as unreachable.
Every failure ends in one line naming the fix.
"""

from __future__ import annotations

import argparse
import os

from ops.common import child_env, dvc, main
from ops.retry import attempt_timeout_s, classify, retry_policy, retrying
from ops.settings import settings
from proc.run import Done, Fail, last_error, run
from proc.secrets import redact
from stages.lib.cli import PipelineError

MISSING = (
    "missing cache files",
    "do not exist neither locally nor on remote",
    "failed to pull data",
    "checkout failed for following targets",
)


def remote_of(name: str | None) -> tuple[str, str]:
    """(name, where it lives) of the remote to use: `name` or DVC's default."""
    from dvc.config import Config

    conf = Config(".dvc")
    chosen = name or conf["core"].get("remote")
    if not chosen:
        raise Fail("no default DVC remote: run `make dagshub` (or `dvc remote add -d NAME URL`)")
    if chosen not in conf["remote"]:
        raise Fail(f"no DVC remote named '{chosen}': see `dvc remote list`, or run `make dagshub`")
    section = conf["remote"][chosen]
    return chosen, section.get("endpointurl") or section["url"]


def explain(what: str, done: Done, tries: int, remote: tuple[str, str]) -> str:
    """The one-line message for a failed `dvc push`/`dvc pull`."""
    name, where = remote
    kind = classify(done.output)
    if kind == "auth":
        return (
            f"remote '{name}' ({where}) rejected the credentials: set DAGSHUB_TOKEN (or AWS_ACCESS_KEY_ID and "
            f"AWS_SECRET_ACCESS_KEY) in .env, run `make dagshub`, then `make {what}` again"
        )
    if kind == "transient":
        tail = "; what was pushed stays there and the rerun sends only the rest" if what == "push" else ""
        return (
            f"remote '{name}' ({where}) unreachable after {tries} attempt{'s' * (tries > 1)} "
            f"({last_error(done.output)}): check the network and the endpoint in .env, "
            f"then run `make {what}` again{tail}"
        )
    if what == "pull" and any(s in done.output.lower() for s in MISSING):
        return (
            f"some outputs dvc.lock names are not on remote '{name}' ({where}): run `make push` where they were "
            "produced, then `make pull` again"
        )
    return f"`dvc {what}` to remote '{name}' failed: {last_error(done.output)}"


def transfer(what: str, remote_name: str | None) -> None:
    env = settings()
    remote = remote_of(remote_name)
    attempts, delay = retry_policy(env)
    timeout = attempt_timeout_s({**os.environ, **env})
    cmd = dvc(what, "--run-cache", "-r", remote[0])
    done, tries = retrying(lambda: run(cmd, child_env(env), echo=True, timeout=timeout), attempts, delay, what)
    if done.returncode:
        raise Fail(explain(what, done, tries, remote))
    print(f"{what}: done (remote '{remote[0]}', {remote[1]})")


def check_mlflow() -> None:
    from stages.lib import tracking

    env = settings()
    uri = env.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith(("http://", "https://")):
        print("mlflow-check: no MLflow server configured; runs go to the project's local store")
        return
    os.environ.update({k: v for k, v in env.items() if k.startswith("MLFLOW_")})  # .env when run outside make
    try:
        version = tracking.check_server(uri)
    except PipelineError as exc:
        raise Fail(str(exc)) from None
    print(f"mlflow-check: {redact(uri, env)} accepts the credentials; MLflow {version or 'version not reported'}")


def _main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=("push", "pull", "check"))
    ap.add_argument("-r", "--remote", help="DVC remote name (default: the project's default remote)")
    args = ap.parse_args(argv)
    if args.action == "check":
        check_mlflow()
    else:
        transfer(args.action, args.remote)


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1] if sys.argv[1:2] in (["push"], ["pull"]) else "mlflow-check", _main))
