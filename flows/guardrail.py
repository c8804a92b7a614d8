"""The guardrail's decisions: what one firing per-variant alert (monitoring/guardrails.yml) does.

- challenger: the registered model tag `serve.challenger_share` becomes "0"; the server's follower
  reads it at its next poll and sends the challenger nothing (MLflow stays the one source of truth).
- champion: when the alert's version is still champion, was registered less than bake_s ago and
  has an earlier champion, `champion` moves back (ops.rollback.roll_back, `make rollback`'s logic).
  The register stage registers a version and promotes it in one run, so its creation time is when
  it became champion; a version rolled back to is older than the bake period, so a rollback is
  never rolled back again. Past the bake period nothing moves: the notification asks a person.
- At most one action per variant per min_interval_s: the time is kept in
  <state_dir>/guardrail-<variant>.json (flows.drift.RateLimit), so a restarted receiver keeps it.
  Each action (or champion alert left to a person) sends one `guardrail` notification.
A registry that cannot be read or written raises: nothing is recorded and Alertmanager retries.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows import notify
from flows.alerts import Alert
from flows.drift import RateLimit
from ops.rollback import roll_back
from stages.lib.cli import PipelineError
from stages.lib.registry import CHALLENGER, CHAMPION

SHARE_TAG = "serve.challenger_share"  # the registered model tag the server's follower reads ("0".."100")


@dataclass
class Guardrail:
    client: Any  # mlflow.MlflowClient on the registry the servers follow
    model: str  # register.model_name
    state_dir: Path  # where the rate limit's times are kept
    bake_s: float
    min_interval_s: float
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, alert: Alert, now: float | None = None) -> str:
        """Decide and act on one alert; one line saying what was done."""
        name, variant = alert.labels.get("alertname", "?"), alert.labels.get("variant", "")
        if alert.status != "firing":
            return f"{name}: resolved: nothing to do"
        if variant not in (CHALLENGER, CHAMPION):
            return f"{name}: variant label {variant!r} is neither {CHAMPION} nor {CHALLENGER}: nothing to do"
        now = time.time() if now is None else now
        with self.lock:  # one decision at a time: two alerts about one variant act once
            limit = RateLimit(self.state_dir / f"guardrail-{variant}.json", self.min_interval_s)
            if not limit.allows(now):
                return f"{name}: {variant}: rate-limited (one action per {self.min_interval_s:g} s)"
            act = self._zero_share if variant == CHALLENGER else self._roll_back
            outcome, notable = act(alert, now)
            if notable:
                limit.record(now)
                body = f"{alert.annotations.get('summary', name)}\n{self.model}: {outcome}"
                notify.send("guardrail", f"guardrail: {outcome}", body)
        return f"{name}: {variant}: {outcome}"

    def _zero_share(self, alert: Alert, now: float) -> tuple[str, bool]:
        was = self.client.get_registered_model(self.model).tags.get(SHARE_TAG)
        if was == "0":
            return "challenger share already 0", False
        self.client.set_registered_model_tag(self.model, SHARE_TAG, "0")
        return f"challenger share set to 0 (was {was or 'the serve.challenger_share setting'})", True

    def _roll_back(self, alert: Alert, now: float) -> tuple[str, bool]:
        current = self.client.get_registered_model(self.model).aliases.get(CHAMPION)
        if current is None:
            return f"no {CHAMPION} alias: nothing to roll back", False
        about = alert.labels.get("version")
        if about and about != str(current):
            return f"the alert is about v{about}, {CHAMPION} is now v{current}: nothing to do", False
        created_s = self.client.get_model_version(self.model, str(current)).creation_timestamp / 1000
        if now - created_s > self.bake_s:
            age_h = (now - created_s) / 3600
            return f"{CHAMPION} v{current} is {age_h:.1f} h old, past the bake period: left to a person", True
        try:
            moved = roll_back(self.client, self.model)
        except PipelineError as exc:  # no earlier champion: said, and left to a person
            return f"not rolled back: {exc}", True
        return f"{CHAMPION} rolled back from v{moved['from']} to v{moved['to']}", True
