"""`make dagshub`: point DVC's default remote at DagsHub (or any S3 endpoint) from .env.

Reads the environment or `.env` (see `.env.example`), never a prompt:
- DagsHub: DAGSHUB_OWNER, DAGSHUB_REPO, DAGSHUB_TOKEN (DAGSHUB_USER if the token's
  user is not the owner). Remote `dagshub`: s3://dvc at https://dagshub.com/OWNER/REPO.s3,
  the token as both S3 keys, as DagsHub documents.
- Any S3 endpoint: DVC_REMOTE_URL (s3://bucket/path), AWS_ENDPOINT_URL (none for AWS
  itself), AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION. Remote `s3`.

The URL and endpoint go to `.dvc/config` (committed, shared with the team); the keys
go to `.dvc/config.local` only (git-ignored, mode 600), written through DVC's config
API in this process, so no secret is ever on a command line. MLflow needs no file:
the Makefile derives MLFLOW_TRACKING_* from DAGSHUB_* for the targets it runs.

Not the DagsHub client (`dagshub.init(..., dvc=True)`, 0.7.3, checked with its network calls
stubbed): it calls DagsHub's API first (repo lookup, maybe creation; token validation, else an
OAuth flow caching tokens under ~/.cache), then writes its remote to .git/.dvc/config, which DVC
never reads, under a section name DVC rejects, with the DVC-over-HTTP endpoint and no default.
"""

from __future__ import annotations

import os
from pathlib import Path

from ops.common import Fail, main
from ops.settings import settings

DAGSHUB = ("DAGSHUB_OWNER", "DAGSHUB_REPO", "DAGSHUB_TOKEN")
CREDENTIAL_KEYS = ("access_key_id", "secret_access_key", "session_token", "password", "user", "token")


def plan(env: dict[str, str]) -> tuple[str, dict[str, str], dict[str, str]]:
    """(remote name, shared settings, credentials) for the configured remote."""
    given = [k for k in DAGSHUB if k in env]
    if given:
        missing = [k for k in DAGSHUB if k not in env]
        if missing:
            raise Fail(
                f"{', '.join(missing)} not set (DagsHub needs {', '.join(DAGSHUB)}): add to .env, see .env.example"
            )
        owner, repo, token = (env[k] for k in DAGSHUB)
        shared = {"url": "s3://dvc", "endpointurl": f"https://dagshub.com/{owner}/{repo}.s3"}
        return "dagshub", shared, {"access_key_id": token, "secret_access_key": token}
    if "DVC_REMOTE_URL" in env:
        url = env["DVC_REMOTE_URL"]
        if not url.startswith("s3://"):
            raise Fail(f"DVC_REMOTE_URL must be an s3:// URL, got {url!r}: fix it in .env")
        shared = {"url": url}
        if "AWS_ENDPOINT_URL" in env:
            shared["endpointurl"] = env["AWS_ENDPOINT_URL"]
        if "AWS_DEFAULT_REGION" in env:
            shared["region"] = env["AWS_DEFAULT_REGION"]
        keys = {"AWS_ACCESS_KEY_ID": "access_key_id", "AWS_SECRET_ACCESS_KEY": "secret_access_key"}
        return "s3", shared, {dvc_key: env[name] for name, dvc_key in keys.items() if name in env}
    raise Fail(
        "no remote configured: set DAGSHUB_OWNER, DAGSHUB_REPO and DAGSHUB_TOKEN "
        "(or DVC_REMOTE_URL and AWS_*) in .env; see .env.example"
    )


def write(dvc_dir: Path, name: str, shared: dict[str, str], secrets: dict[str, str]) -> list[str]:
    """Set remote `name` as default in .dvc/config and its keys in .dvc/config.local.
    Returns the credential keys found in .dvc/config and removed from it."""
    from dvc.config import Config

    config = Config(str(dvc_dir))
    moved: list[str] = []
    with config.edit("repo") as conf:
        section = conf["remote"].setdefault(name, {})
        for key in CREDENTIAL_KEYS:
            if section.pop(key, None) is not None:
                moved.append(key)
        section.update(shared)
        conf["core"]["remote"] = name
    local = dvc_dir / "config.local"
    local.touch(mode=0o600, exist_ok=True)
    os.chmod(local, 0o600)  # the keys are readable by their owner only
    with config.edit("local") as conf:
        section = conf["remote"].setdefault(name, {})
        for key in CREDENTIAL_KEYS:
            section.pop(key, None)
        section.update(secrets)
    return moved


def _main(argv: list[str]) -> None:
    root = Path.cwd()
    if not (root / ".dvc").is_dir():
        raise Fail(f"{root} is not a DVC project (no .dvc/): run `make dagshub` in the project's root")
    name, shared, secrets = plan(settings(root))
    moved = write(root / ".dvc", name, shared, secrets)
    where = f" at {shared['endpointurl']}" if "endpointurl" in shared else ""
    print(f"dagshub: default DVC remote '{name}' = {shared['url']}{where} (.dvc/config)")
    keys = ", ".join(sorted(secrets)) or "none: the AWS default credential chain applies"
    print(f"dagshub: credentials ({keys}) in .dvc/config.local, mode 600")
    if moved:
        print(f"dagshub: removed {', '.join(moved)} from .dvc/config (credentials belong in .dvc/config.local)")


if __name__ == "__main__":
    raise SystemExit(main("dagshub", _main))
