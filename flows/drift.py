"""The drift trigger: poll a Prometheus /metrics URL and start a retrain run when it shows
`cifar100_drift_detected 1` (the serving app's gauge), at most once per
AUTOMATION_DRIFT_MIN_INTERVAL_S, so a stuck alarm cannot start runs in a loop.

The time of the last triggered run is kept in <project>/.automation/drift.json, so a
restarted watcher keeps the limit. Each trigger sends one drift notification, after the run
was queued; a rate-limited alarm, or a run that failed to start, sends none. A poll that fails
(the Prefect API or the deployment not there) is one line and retried with backoff.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flows import notify

METRIC = "cifar100_drift_detected"
FIRST_RETRY_S = 2.0  # after a failed poll; doubles per failure in a row
MAX_RETRY_S = 300.0  # the longest wait between failed polls (or poll_s when longer)


def drift_flag(text: str) -> bool:
    """True when any `cifar100_drift_detected` sample in Prometheus text format is >= 1."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == METRIC and sample.value >= 1:
                return True
    return False


def scrape(url: str, timeout_s: float = 10.0) -> bool | None:
    """The drift flag at url; None when the endpoint cannot be read or parsed (no run is started)."""
    import httpx

    try:
        resp = httpx.get(url, timeout=timeout_s)
        resp.raise_for_status()
        return drift_flag(resp.text)
    except (httpx.HTTPError, ValueError):
        return None


@dataclass
class RateLimit:
    """At most one trigger per min_interval_s, remembered in a JSON file."""

    path: Path
    min_interval_s: float

    def last(self) -> float:
        try:
            return float(json.loads(self.path.read_text())["last_trigger"])
        except (OSError, ValueError, KeyError, TypeError):
            return float("-inf")  # never triggered

    def allows(self, now: float) -> bool:
        return now - self.last() >= self.min_interval_s

    def record(self, now: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"last_trigger": now}))
        tmp.replace(self.path)  # whole or not at all


def poll_once(url: str, limit: RateLimit, start_run: Callable[[], object], now: float | None = None) -> str:
    """One poll: 'unreachable', 'quiet', 'rate-limited' or 'triggered' (then a run was started).
    A run that fails to start raises (watch retries it with backoff) and is neither recorded nor notified."""
    flag = scrape(url)
    if flag is None:
        return "unreachable"
    if not flag:
        return "quiet"
    now = time.time() if now is None else now
    if not limit.allows(now):
        return "rate-limited"
    start_run()
    limit.record(now)
    notify.send("drift", "drift detected: retraining", f"{METRIC} is 1 at {url}; a retrain run was started")
    return "triggered"


def backoff_s(failures: int, poll_s: float) -> float:
    """The wait after the n-th failed poll in a row: FIRST_RETRY_S doubling, never over max(poll_s, MAX_RETRY_S)."""
    return min(FIRST_RETRY_S * 2 ** (failures - 1), max(poll_s, MAX_RETRY_S))


def watch(
    url: str,
    limit: RateLimit,
    start_run: Callable[[], object],
    poll_s: float,
    stop: threading.Event,
    busy: threading.Lock | None = None,
) -> None:
    """Poll every poll_s until stop is set; each outcome other than 'quiet' is printed. A poll that
    raises (the deployment not registered yet, the API down) is one line and retried with backoff:
    it never ends the watcher. A poll holds `busy`, so whoever sets stop and then takes `busy` knows
    that no trigger is under way and none will start."""
    busy = busy or threading.Lock()
    last, failures = None, 0
    while not stop.is_set():
        try:
            with busy:
                if stop.is_set():
                    break
                outcome = poll_once(url, limit, start_run)
                if outcome != last or outcome == "triggered":
                    print(f"drift-trigger: {url}: {outcome}", flush=True)
        except Exception as exc:  # any failure of one poll; the next one may succeed
            failures += 1
            wait = backoff_s(failures, poll_s)
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            print(f"drift-trigger: {url}: poll failed ({reason}); retrying in {wait:g} s", flush=True)
            last = "failed"
            stop.wait(wait)
            continue
        failures = 0
        last = outcome
        stop.wait(poll_s)
