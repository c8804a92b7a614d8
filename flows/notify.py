"""Notifications on failure, promotion, drift and guardrail actions, through Apprise.

AUTOMATION_NOTIFY_URLS (environment or .env) holds Apprise URLs, space- or
comma-separated: `json://host/path` for a plain webhook, `slack://...`,
`mailtos://...` and the ~100 others Apprise knows. Empty: nothing is sent.
Every title and body is scrubbed of the project's secrets (proc.secrets.redact)
before it leaves; a failed delivery is reported on stderr, never fails the run.
`python -m flows.notify KIND TITLE BODY` sends one (the Airflow callback's way in).
"""

from __future__ import annotations

import re
import sys

from flows import settings as automation
from ops.common import Fail
from ops.settings import settings
from proc.secrets import redact

KINDS = {"failure": "failure", "promotion": "success", "drift": "warning", "guardrail": "warning", "info": "info"}


def urls(raw: str) -> list[str]:
    return [u for u in re.split(r"[\s,]+", raw) if u]


def send(kind: str, title: str, body: str, notify_urls: str | None = None) -> bool:
    """Send one notification to every configured URL; True when all took it (or none is configured)."""
    import apprise

    try:
        env = settings()  # whose secrets are scrubbed
        targets = urls(automation.load(".").notify_urls if notify_urls is None else notify_urls)
    except Fail as exc:  # a bad setting: said here; a notification never fails the run
        print(f"notify: error: {exc}", file=sys.stderr)
        return False
    if not targets:
        return True
    app = apprise.Apprise()
    for url in targets:
        if not app.add(url):
            print(
                f"notify: error: AUTOMATION_NOTIFY_URLS has a URL Apprise does not know: {redact(url, env)}",
                file=sys.stderr,
            )
    ok = bool(len(app)) and app.notify(
        title=redact(f"[cifar100] {title}", env),
        body=redact(body, env),
        notify_type=KINDS.get(kind, "info"),
    )
    if not ok:
        print(f"notify: error: the {kind} notification was not delivered to every URL", file=sys.stderr)
    return bool(ok)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="send one automation notification through Apprise")
    ap.add_argument("kind", choices=sorted(KINDS))
    ap.add_argument("title")
    ap.add_argument("body")
    args = ap.parse_args(argv)
    return 0 if send(args.kind, args.title, args.body) else 1


if __name__ == "__main__":
    raise SystemExit(main())
