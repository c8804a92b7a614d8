"""Shared by the remote scripts (dagshub_setup, remote, git_sync): settings from
the environment or `.env`, running dvc/git with bounded retries, and turning
their failures into one line that names the fix.

Secrets are read from the environment or `.env` only. They travel to child
processes in the environment (never argv) and are scrubbed from anything printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SECRET_NAMES = (
    "DAGSHUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)
ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*:?=\s*(.*?)\s*$")

# Lower-cased fragments of dvc/git/boto output, by what the user has to do about them.
AUTH = (
    "forbidden",
    "(403)",
    "(401)",
    "invalidaccesskeyid",
    "signaturedoesnotmatch",
    "accessdenied",
    "access denied",
    "unable to locate credentials",
    "nocredentialserror",
    "unauthorized",
    "authentication failed",
    "could not read username",
    "permission denied (publickey",
)
UNREACHABLE = (
    "could not connect",
    "connection refused",
    "connection reset",
    "name or service not known",
    "temporary failure in name resolution",
    "could not resolve host",
    "failed to connect",
    "timed out",
    "connect timeout",
    "read timeout",
    "network is unreachable",
    "(500)",
    "(502)",
    "(503)",
    "(504)",
    "slowdown",
    "service unavailable",
    "remote end closed connection",
)


class Fail(Exception):
    """An expected failure: printed as `what: error: message`, exit status 1."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as `make -include .env` reads them: no quoting, `#` starts a comment."""
    found: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            m = ENV_LINE.match(line.split("#", 1)[0])
            if m:
                found[m.group(1)] = m.group(2)
    return found


def settings(root: Path = Path("."), environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment over `.env`; names with empty values count as unset. With DAGSHUB_OWNER
    and no MLFLOW_TRACKING_URI, MLflow goes to the DagsHub repo's server, the token as password."""
    given = os.environ if environ is None else environ
    merged = {**read_env_file(root / ".env"), **{k: v for k, v in given.items() if v != ""}}
    found = {k: v for k, v in merged.items() if v != ""}
    if "DAGSHUB_OWNER" in found and "MLFLOW_TRACKING_URI" not in found:  # as the Makefile derives them
        repo = f"{found['DAGSHUB_OWNER']}/{found.get('DAGSHUB_REPO', '')}"
        found["MLFLOW_TRACKING_URI"] = f"https://dagshub.com/{repo}.mlflow"
        found["MLFLOW_TRACKING_USERNAME"] = found.get("DAGSHUB_USER", found["DAGSHUB_OWNER"])
        found["MLFLOW_TRACKING_PASSWORD"] = found.get("DAGSHUB_TOKEN", "")
    return found


def redact(text: str, env: Mapping[str, str]) -> str:
    """text with the values of SECRET_NAMES masked (values under 8 characters are no real secret)."""
    for name in SECRET_NAMES:
        if len(env.get(name, "")) >= 8:
            text = text.replace(env[name], "***")
    return text


def classify(output: str) -> str:
    """'auth', 'unreachable' or 'other', from a failed command's output."""
    low = output.lower()
    if any(s in low for s in AUTH):
        return "auth"
    if any(s in low for s in UNREACHABLE):
        return "unreachable"
    return "other"


def last_error(output: str) -> str:
    """The most telling line of a failed command's output, for the one-line message."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip() and not ln.startswith("Having any troubles")]
    errors = [ln for ln in lines if ln.lower().startswith(("error", "fatal"))]
    line = (errors or lines or ["no output"])[-1]
    line = re.sub(r"^(error|fatal):\s*(unexpected error\s*-\s*)?", "", line, flags=re.I)
    return re.sub(r'"(\w+://[^/"]+)/[^"]*"', r'"\1"', line)[:300]  # a URL's host says enough


@dataclass
class Done:
    returncode: int
    output: str


def run(cmd: Sequence[str], env: Mapping[str, str], echo: bool = False, timeout: float = 3600) -> Done:
    """Run cmd with stdout and stderr merged; with echo, print its output (secrets scrubbed)
    minus dvc's error lines and footer, which the caller's one-line message replaces."""
    try:
        done = subprocess.run(
            list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(env), timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return Done(124, f"timed out after {timeout:g} s")
    if echo:
        for line in done.stdout.splitlines():
            if line.strip() and not line.startswith(("ERROR:", "Having any troubles")):
                print(redact(line, env))
    return Done(done.returncode, done.stdout)


def retrying(attempt: Callable[[], Done], attempts: int, delay_s: float, what: str) -> tuple[Done, int]:
    """Call `attempt` until it succeeds, fails for a reason retrying cannot fix, or
    `attempts` calls were made (delay_s, 2*delay_s, ... between); return (last result, calls made)."""
    for n in range(1, attempts + 1):
        done = attempt()
        if done.returncode == 0 or classify(done.output) != "unreachable" or n == attempts:
            return done, n
        wait = delay_s * 2 ** (n - 1)
        print(f"{what}: remote unreachable (attempt {n} of {attempts}); retrying in {wait:g} s", file=sys.stderr)
        time.sleep(wait)
    raise AssertionError("not reached: the last attempt returns")


def retry_policy(env: Mapping[str, str]) -> tuple[int, float]:
    """(attempts, first delay in s): REMOTE_ATTEMPTS and REMOTE_RETRY_DELAY_S, bounded."""
    try:
        attempts = int(env.get("REMOTE_ATTEMPTS", "3"))
        delay = float(env.get("REMOTE_RETRY_DELAY_S", "2"))
    except ValueError as exc:
        raise Fail(f"REMOTE_ATTEMPTS must be an integer and REMOTE_RETRY_DELAY_S a number: {exc}") from None
    return max(1, min(attempts, 10)), max(0.0, min(delay, 60.0))


def dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for dvc/git: settings (incl. .env) over os.environ, never prompting."""
    return {**os.environ, **env, "GIT_TERMINAL_PROMPT": "0"}


def main(what: str, body: Callable[[list[str]], None], argv: list[str] | None = None) -> int:
    """Run a script's body; a Fail prints one line (secrets scrubbed) and exits 1."""
    try:
        body(sys.argv[1:] if argv is None else argv)
    except Fail as exc:
        print(f"{what}: error: {redact(str(exc), settings())}", file=sys.stderr)
        return 1
    return 0
