"""The one failure classifier and the one retry loop.

A failure is `auth` (wrong or missing credentials: fix .env), `transient` (remote
unreachable, MLflow or S3 answering 5xx, Docker daemon busy: retrying may help) or
`permanent` (a failed validation, a bad param, anything else: retrying cannot).
The remote operations (ops.remote, ops.git_sync) retry transient failures with
`retrying`; the automation (flows.steps) classifies a whole step with `classify`
and lets its engine retry, with the operations set to one attempt (REMOTE_ATTEMPTS=1),
so a step is never retried at two levels. Stdlib (and ops.common) only: Airflow's venv imports it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from ops.common import Fail

# Lower-cased fragments of dvc/git/boto/httpx/docker output, by what the user has to do about them.
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
    "rejected the credentials",
)
# PERMANENT wins over TRANSIENT: a validation error that mentions a timeout is still a validation error.
PERMANENT = (
    "validate: error",
    "params.yaml:",
    "paramserror",
    "unknown key",
    "must be one of",
    "usage:",
    "not up to date",
    "uncommitted changes",
    "step timed out after",  # the automation's own per-step timeout: the step is too slow, not unlucky
)
TRANSIENT = (
    # remote unreachable (dvc, git, boto, httpx)
    "could not connect",
    "connection refused",
    "connection reset",
    "name or service not known",
    "temporary failure in name resolution",
    "could not resolve host",
    "failed to connect",
    "network is unreachable",
    "remote end closed connection",
    "timed out",
    "connect timeout",
    "read timeout",
    "unreachable after",
    "max retries exceeded",
    # MLflow (or S3) answering 5xx
    "internal server error",
    "bad gateway",
    "service unavailable",
    "gateway timeout",
    "slowdown",
    "status code 500",
    "status code 502",
    "status code 503",
    "status code 504",
    "(500)",
    "(502)",
    "(503)",
    "(504)",
    # Docker daemon busy or restarting
    "docker daemon not reachable",
    "cannot connect to the docker daemon",
    "error during connect",
    "device or resource busy",
    "toomanyrequests",
    "context deadline exceeded",
)


def classify(output: str) -> str:
    """'auth', 'permanent' or 'transient', from a failed command's output."""
    low = output.lower()
    if any(s in low for s in AUTH):
        return "auth"
    if any(s in low for s in PERMANENT):
        return "permanent"
    return "transient" if any(s in low for s in TRANSIENT) else "permanent"


class Outcome(Protocol):
    returncode: int
    output: str


OutcomeT = TypeVar("OutcomeT", bound=Outcome)  # what an attempt returns comes back unchanged


def retrying(attempt: Callable[[], OutcomeT], attempts: int, delay_s: float, what: str) -> tuple[OutcomeT, int]:
    """Call `attempt` until it succeeds, fails for a reason retrying cannot fix, or
    `attempts` calls were made (delay_s, 2*delay_s, ... between); return (last result, calls made)."""
    for n in range(1, attempts + 1):
        done = attempt()
        if done.returncode == 0 or classify(done.output) != "transient" or n == attempts:
            return done, n
        wait = delay_s * 2 ** (n - 1)
        print(f"{what}: remote unreachable (attempt {n} of {attempts}); retrying in {wait:g} s", file=sys.stderr)
        time.sleep(wait)
    raise AssertionError("not reached: the last attempt returns")


def retry_policy(env: Mapping[str, str]) -> tuple[int, float]:
    """(attempts, first delay in s): REMOTE_ATTEMPTS and REMOTE_RETRY_DELAY_S, bounded.
    A bad value is a Fail naming both settings."""
    try:
        attempts = int(env.get("REMOTE_ATTEMPTS", "3"))
        delay = float(env.get("REMOTE_RETRY_DELAY_S", "2"))
    except ValueError as exc:
        raise Fail(f"REMOTE_ATTEMPTS must be an integer and REMOTE_RETRY_DELAY_S a number: {exc}") from None
    return max(1, min(attempts, 10)), max(0.0, min(delay, 60.0))


def attempt_timeout_s(env: Mapping[str, str]) -> float:
    """Seconds one attempt of a remote operation may take (REMOTE_ATTEMPT_TIMEOUT_S, default 3600, 10 to 86400):
    a remote that accepts connections but never answers then costs one bounded, transient attempt.
    A cut-off transfer loses nothing: DVC's files are content-addressed, so the next attempt sends only the rest."""
    raw = env.get("REMOTE_ATTEMPT_TIMEOUT_S") or "3600"
    try:
        return max(10.0, min(float(raw), 86400.0))
    except ValueError:
        raise Fail(f"REMOTE_ATTEMPT_TIMEOUT_S={raw!r} is not a number: set a number of seconds") from None
