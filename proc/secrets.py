"""The one secret scrubber: whatever the project prints, logs or sends (notifications,
one-line errors, echoed dvc/git output) goes through `redact` first.

Secrets are read from the environment or `.env` only and travel to child processes in
the environment, never argv; `redact` masks their values and any user:password@ in a URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Which of runner/credentials.py's REMOTE_VARS hold secret values (tests/unit/test_credentials.py
# checks each is one); listed here, as proc may not import runner (pyproject's layers).
SECRET_NAMES = (
    "DAGSHUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)
# Anything that looks like a credential in a URL (scheme://user:password@host).
URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s:]+:[^/@\s]+@")


def redact(text: str, env: Mapping[str, str]) -> str:
    """text with the values of SECRET_NAMES (values under 8 characters are no real secret)
    and URL credentials masked."""
    for name in SECRET_NAMES:
        if len(env.get(name, "")) >= 8:
            text = text.replace(env[name], "***")
    return URL_CREDENTIALS.sub(r"\1***:***@", text)
