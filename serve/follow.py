"""Following the registry: one thread polls it every `poll_interval_s` and tells each variant's
holder which version its alias names.

One request per poll (`get_registered_model`) gives both aliases and the registered model's tags,
among them `serve.challenger_share` (the run-time override of the challenger's share, written by
the guardrail). A poll that cannot read the registry marks it unreachable since that moment
(`/ready` and `cifar100_registry_unreachable_since_seconds`) and the variants keep serving what they
hold; the first poll that reads it again loads whatever the aliases name by then.

Each of the follower's registry requests is bounded (`bound_requests`): MLflow's client otherwise
waits 120 s per request and retries 5-7 times with backoff, so an outage would show minutes late.
The poll itself is the retry: nothing is retried at two levels.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import MutableMapping
from dataclasses import dataclass

from serve.assign import CHALLENGER, parse_share
from serve.metrics import Metrics
from serve.reload import ModelHolder
from serve.settings import Settings

log = logging.getLogger("serve")
SHARE_TAG = "serve.challenger_share"  # registered model tag: "0".."100" (%), overrides the setting


def bound_requests(timeout_s: int, environ: MutableMapping[str, str] = os.environ) -> None:
    """MLflow's HTTP client settings for a follower, unless the user set them: each request waits
    at most `timeout_s` and is not retried (the next poll is the retry)."""
    environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout_s))
    environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


@dataclass
class RegistryState:
    unreachable_since: float | None = None  # unix time of the first failed poll of this outage
    error: str | None = None

    def as_dict(self) -> dict:
        reachable = self.unreachable_since is None
        return {"reachable": reachable, "unreachable_since": self.unreachable_since, "error": self.error}


class Follower:
    def __init__(self, settings: Settings, holders: dict[str, ModelHolder], metrics: Metrics, client):
        self.settings, self.holders, self.metrics, self.client = settings, holders, metrics, client
        self.registry = RegistryState()
        self.share_override: float | None = None  # from SHARE_TAG; None: the setting stands
        self.share_error: str | None = None  # a tag value that is not a share (ignored)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> None:
        """Read the registry once and bring every holder to its alias's version."""
        from mlflow.exceptions import MlflowException

        name = self.settings.model_name
        try:
            model = self.client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":  # reachable, nothing registered yet
                self._reached()
                return self._each(lambda h: self._missing(h, f"model {name!r} is not registered yet"))
            return self._unreachable(exc)
        except Exception as exc:  # connection refused, timeout, DNS, 5xx: the registry is out
            return self._unreachable(exc)
        self._reached()
        self._read_share(model.tags.get(SHARE_TAG))
        aliases = {alias: str(version) for alias, version in (model.aliases or {}).items()}
        self._each(lambda h: self._bring(h, aliases))

    def _each(self, step) -> None:
        for holder in self.holders.values():  # one variant's failure never stops the other's update
            try:
                step(holder)
            except Exception:
                log.exception("serve: following %s failed", holder.variant)

    def _bring(self, holder: ModelHolder, aliases: dict[str, str]) -> None:
        if holder.pinned:
            if holder.current is None:  # a pinned version never moves; only a failed first load is retried
                holder.load(holder.follows, None)
            return
        version = aliases.get(holder.follows)
        if version is None:
            return self._missing(holder, f"no alias {holder.follows!r} on {self.settings.model_name!r}")
        holder.load(version, holder.follows)

    def _missing(self, holder: ModelHolder, reason: str) -> None:
        if holder.variant == CHALLENGER:
            holder.drop(reason)  # no challenger alias: no experiment, the champion answers all
        else:
            holder.fail(LookupError(reason))  # the champion keeps what it serves

    def _read_share(self, raw: str | None) -> None:
        try:
            self.share_override, self.share_error = parse_share(raw, f"tag {SHARE_TAG}"), None
        except ValueError as exc:
            self.share_override, self.share_error = None, str(exc)
            log.error("serve: %s; the setting's share stands", exc)

    def _reached(self) -> None:
        if self.registry.unreachable_since is not None:
            down = time.time() - self.registry.unreachable_since
            log.warning("serve: the registry is reachable again after %.1f s", down)
        self.registry = RegistryState()
        self.metrics.registry_down_since.set(0)

    def _unreachable(self, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if self.registry.unreachable_since is None:
            since = time.time()
            self.registry = RegistryState(since, error)
            self.metrics.registry_down_since.set(since)
            log.error("serve: the registry is unreachable, serving what is loaded: %s", error)
        else:
            self.registry.error = error

    def _run(self) -> None:
        self.poll()
        while not self._stop.wait(self.settings.poll_interval_s):
            self.poll()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="model-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
