"""The one secret scrubber: whatever the project prints, logs or sends (notifications,
one-line errors, echoed dvc/git output) goes through `redact` first.

Secrets are read from the environment or `.env` only and travel to child processes in
the environment, never argv; `redact` masks their values and any user:password@ in a URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from runner.credentials import SECRETS, read_env_file

SECRET_NAMES = SECRETS  # the names whose values are masked (runner/credentials.py, the one list)
# Anything that looks like a credential in a URL (scheme://user:password@host).
URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s:]+:[^/@\s]+@")


def redact(text: str, env: Mapping[str, str]) -> str:
    """text with the values of SECRET_NAMES (values under 8 characters are no real secret)
    and URL credentials masked."""
    for name in SECRET_NAMES:
        if len(env.get(name, "")) >= 8:
            text = text.replace(env[name], "***")
    return URL_CREDENTIALS.sub(r"\1***:***@", text)


def redact_all(text: str, env_file: Path) -> str:
    """text with the secrets of both the environment and `env_file` (.env) masked, whichever was used."""
    return redact(redact(text, os.environ), read_env_file(env_file))
