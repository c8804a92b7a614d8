"""Hot reload: the version one variant serves.

A holder follows one alias (or pins one version) for one variant, champion or challenger
(serve/variants.py polls the registry and tells each holder which version its alias names).
A new version is loaded in the polling thread while the old one keeps serving, then
swapped in with one reference assignment (atomic): a batch already running holds
the old model and finishes on it. A failed load keeps the old one, logs the
reason and counts `cifar100_model_reload_failures_total`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from serve.assign import CHALLENGER, CHAMPION
from serve.drift import carry_alarm
from serve.metrics import Metrics
from serve.model import LoadedModel, load_version, pick_device, resolve
from serve.settings import Settings

log = logging.getLogger("serve")


class ModelHolder:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        loader: Callable[..., LoadedModel] = load_version,
        variant: str = CHAMPION,
        client=None,
    ):
        from mlflow import MlflowClient

        self.settings = settings
        self.metrics = metrics
        self.loader = loader
        self.variant = variant
        # What this variant follows: the champion slot serves settings.model (an alias or a pinned version).
        self.follows = settings.model if variant == CHAMPION else CHALLENGER
        self.client = client or MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
        self.device = pick_device(settings.device)
        self.current: LoadedModel | None = None
        self.last_error: str | None = None

    @property
    def pinned(self) -> bool:
        return self.follows.isdigit()

    def check(self) -> bool:
        """Resolve the alias now and load its version if it is another; True on a swap."""
        try:
            version, alias = resolve(self.client, self.settings.model_name, self.follows)
        except Exception as exc:  # the registry or the alias: keep serving what we have
            return self.fail(exc)
        return self.load(version, alias)

    def load(self, version: str, alias: str | None) -> bool:
        """Load and swap in `version` unless it is the one served; True on a swap."""
        s = self.settings
        if self.current is not None and self.current.version == version:
            return False
        try:
            new = self.loader(self.client, s.model_name, version, alias, self.device, drift_window=s.drift_window)
        except Exception as exc:  # any failure: keep serving what we have
            return self.fail(exc)
        if self.current is not None and carry_alarm(self.current.monitor, new.monitor, f"v{self.current.version}"):
            log.warning(
                "serve: v%s's drift alarm carried to v%s until it has a full window", self.current.version, version
            )
        old, self.current = self.current, new  # the swap
        self.last_error = None
        self.metrics.serving(self.variant, new.version, new.alias)
        log.warning(
            "serve: %s now serves %s v%s%s (was %s)",
            self.variant,
            new.name,
            new.version,
            f" @{new.alias}" if new.alias else "",
            f"v{old.version}" if old else "nothing",
        )
        return True

    def drop(self, reason: str) -> None:
        """The challenger's alias is gone: the experiment is over, stop serving it."""
        if self.current is not None:
            log.warning("serve: %s stops serving v%s: %s", self.variant, self.current.version, reason)
            self.metrics.serving(self.variant, None, None)
        self.current, self.last_error = None, reason

    def fail(self, exc: Exception) -> bool:
        s = self.settings
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.metrics.reload_failures.inc()
        kept = f"v{self.current.version}" if self.current else "nothing"
        log.error(
            "serve: %s: loading %s@%s failed, still serving %s: %s",
            self.variant,
            s.model_name,
            self.follows,
            kept,
            self.last_error,
        )
        return False
