"""Hot reload: which version is served, and a thread that follows the alias.

Every `poll_interval_s` the alias is resolved; when it points at another version,
that version is loaded in this thread while the old one keeps serving, then
swapped in with one reference assignment (atomic): a batch already running holds
the old model and finishes on it. A failed load keeps the old one, logs the
reason and counts `cifar100_model_reload_failures_total`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from serve.drift import carry_alarm
from serve.metrics import Metrics
from serve.model import LoadedModel, load_version, pick_device, resolve
from serve.settings import Settings

log = logging.getLogger("serve")


class ModelHolder:
    def __init__(self, settings: Settings, metrics: Metrics, loader: Callable[..., LoadedModel] = load_version):
        from mlflow import MlflowClient

        self.settings = settings
        self.metrics = metrics
        self.loader = loader
        self.client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
        self.device = pick_device(settings.device)
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Load and swap in the version the alias names now, if it is another; True on a swap."""
        s = self.settings
        try:
            version, alias = resolve(self.client, s.model_name, s.model)
            if self.current is not None and self.current.version == version:
                return False
            new = self.loader(self.client, s.model_name, version, alias, self.device, drift_window=s.drift_window)
        except Exception as exc:  # any failure: keep serving what we have
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.metrics.reload_failures.inc()
            kept = f"v{self.current.version}" if self.current else "nothing"
            log.error("serve: loading %s@%s failed, still serving %s: %s", s.model_name, s.model, kept, self.last_error)
            return False
        if self.current is not None and carry_alarm(self.current.monitor, new.monitor, f"v{self.current.version}"):
            log.warning(
                "serve: v%s's drift alarm carried to v%s until it has a full window", self.current.version, version
            )
        old, self.current = self.current, new  # the swap
        self.last_error = None
        self.metrics.serving(new.version, new.alias)
        log.warning(
            "serve: now serving %s v%s%s (was %s)",
            new.name,
            new.version,
            f" @{new.alias}" if new.alias else "",
            f"v{old.version}" if old else "nothing",
        )
        return True

    def _follow(self) -> None:
        self.check()
        while not self._stop.wait(self.settings.poll_interval_s):
            if self.settings.pinned and self.current is not None:
                continue  # a pinned version never moves; only a failed first load is retried
            self.check()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="model-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
