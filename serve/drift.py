"""Drift detection: a rolling window of recent inputs against the reference profile.

Method: one two-sample test per feature, then a Bonferroni correction over
all of them, and a single decision: drift when the smallest corrected p-value
is below `alpha`. Continuous features (the image features, the model's
confidence and each PCA direction of its embedding; stages/lib/drift_profile.py)
get the Kolmogorov-Smirnov test (scipy.stats.ks_2samp); predicted classes get a
chi-square test of homogeneity on the window's and the reference's class
counts (scipy.stats.chi2_contingency), with rare classes pooled so every
expected count is at least 5.

Why scipy and not Evidently or alibi-detect: this is the method alibi-detect's
KSDrift uses for multivariate data (feature-wise KS + Bonferroni), with nothing
hidden: scipy is already a dependency of the project, and both libraries would
bring large dependency trees (alibi-detect pins its own TensorFlow/PyTorch
ranges; Evidently pulls a web stack) into the serving image for a few tests.
Bonferroni rather than Benjamini-Hochberg because the question is global ("has
anything drifted?"): Bonferroni bounds the false-alarm rate of that question
by alpha even though the features are correlated; BH controls the share of
false discoveries among flagged features, which is not the alarm we raise.

Score: -log10 of the smallest corrected p-value (0 = nothing unusual; drift
when score > -log10(alpha), 2 at the default alpha = 0.01); capped at 50.
Cost: observe() only computes the batch's features; status() runs the tests
(about 20 KS tests of the window against the presorted reference, a few ms
each) and only once `retest_every` new images have arrived since the last run
(default a tenth of the window); in between it returns the last verdict with
the current fill. Thread-safe: a server observes from its batch worker and
reads status from its /metrics handler.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stages.lib import drift_profile

MAX_SCORE = 50.0
# The alarm level. At 0.05 clean real CIFAR-100 windows of 500 raised 7% false alarms (above the
# nominal 5%), at 0.01 0.75%, with every corrupted window still caught (README, bench/drift.py).
DEFAULT_ALPHA = 0.01
MIN_EXPECTED = 5  # chi-square's usual rule: every expected cell count at least 5


@dataclass(frozen=True)
class DriftStatus:
    score: float  # -log10(smallest Bonferroni-corrected p), 0 when not tested
    drifted: bool
    filled: int  # images in the window
    details: dict = field(default_factory=dict)  # per test: statistic, p, p_corrected; and the settings


def ks_sorted(window: np.ndarray, reference_sorted: np.ndarray) -> tuple[float, float]:
    """ks_2samp(window, reference, method="asymp") with the reference sorted once, not per call:
    the same statistic (largest gap between the two empirical CDFs) and the same p."""
    from scipy.stats import kstwo

    win = np.sort(window)
    points = np.concatenate([win, reference_sorted])
    gap = np.abs(
        np.searchsorted(win, points, side="right") / len(win)
        - np.searchsorted(reference_sorted, points, side="right") / len(reference_sorted)
    )
    d = float(gap.max())
    n, m = len(win), len(reference_sorted)
    return d, float(np.clip(kstwo.sf(d, np.round(n * m / (n + m))), 0, 1))


def ks_pvalue(window: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(KS statistic, p) of two samples; asymptotic p, as exact is slow at these sizes."""
    from scipy.stats import ks_2samp

    res = ks_2samp(window, reference, method="asymp")
    return float(res.statistic), float(res.pvalue)


def pooled_bins(reference_counts: np.ndarray, window: int) -> np.ndarray:
    """Bin of each class (C,): classes in order of reference frequency, pooled so that each
    bin expects at least MIN_EXPECTED of `window` draws (and has some reference mass)."""
    probs = reference_counts / max(reference_counts.sum(), 1)
    order = np.argsort(-probs, kind="stable")
    bins = np.zeros(len(probs), dtype=np.int64)
    current, mass = 0, 0.0
    for cls in order:
        bins[cls] = current
        mass += probs[cls]
        if mass * window >= MIN_EXPECTED:
            current, mass = current + 1, 0.0
    if mass > 0 and current > 0:  # a short last bin joins the one before it
        bins[bins == current] = current - 1
    return bins


def class_pvalue(window_classes: np.ndarray, reference_counts: np.ndarray) -> tuple[float, float]:
    """(chi-square statistic, p) of the window's predicted classes vs the reference counts."""
    from scipy.stats import chi2_contingency

    bins = pooled_bins(reference_counts, len(window_classes))
    k = int(bins.max()) + 1
    if k < 2:
        return 0.0, 1.0  # one pooled bin: nothing to compare
    table = np.stack(
        [
            np.bincount(bins[window_classes], minlength=k),
            np.bincount(bins, weights=reference_counts, minlength=k),
        ]
    )
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    res = chi2_contingency(table, correction=False)
    return float(res.statistic), float(res.pvalue)


def score_of(p_corrected: float) -> float:
    return min(MAX_SCORE, max(0.0, -math.log10(max(p_corrected, 10.0**-MAX_SCORE))))


def load_profile(path_or_dict) -> dict:
    if isinstance(path_or_dict, dict):
        return drift_profile.check_profile(path_or_dict, "profile")
    path = Path(path_or_dict)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"{path}: file not found (run `dvc repro profile`, or pass the model's extra_files/reference_profile.json)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON reference profile ({exc})") from None
    return drift_profile.check_profile(data, str(path))


class DriftMonitor:
    """observe() batches as they are served; status() tests the last `window` images."""

    def __init__(
        self,
        profile: dict,
        window: int = 500,
        alpha: float = DEFAULT_ALPHA,
        min_fill: int | None = None,
        retest_every: int | None = None,
    ):
        if window < 10:
            raise ValueError(f"window must be >= 10 images, got {window}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self.profile = drift_profile.check_profile(profile, "profile")
        self.window, self.alpha = window, alpha
        self.min_fill = window if min_fill is None else max(10, min(min_fill, window))
        self.retest_every = max(1, window // 10) if retest_every is None else max(1, retest_every)
        feats = self.profile["features"]
        self.names = [n for n in drift_profile.IMAGE_FEATURES] + ["confidence"]
        self.names += sorted((n for n in feats if n.startswith("pca_")), key=lambda n: int(n[4:]))
        self.reference = {n: np.sort(np.asarray(feats[n], dtype=np.float64)) for n in self.names}
        self.class_counts = np.asarray(self.profile["classes"]["counts"], dtype=np.float64)
        self._values = np.full((window, len(self.names)), np.nan)  # ring buffer: one row per image
        self._classes = np.full(window, -1, dtype=np.int64)  # -1: no prediction seen for that image
        self._next, self._filled, self._seen = 0, 0, 0
        self._lock = threading.Lock()
        self._cached: DriftStatus | None = None
        self._new = 0  # images observed since the last test
        self.held: DriftStatus | None = None  # an alarm carried from the monitor this one replaced

    @classmethod
    def from_profile(cls, path_or_dict, window: int = 500, alpha: float = DEFAULT_ALPHA, **settings):
        """settings: min_fill, retest_every (see __init__)."""
        return cls(load_profile(path_or_dict), window=window, alpha=alpha, **settings)

    def features(self, images: np.ndarray, probs: np.ndarray | None, embedding: np.ndarray | None) -> np.ndarray:
        """(N, len(self.names)) rows; NaN where a model feature is not available."""
        images = drift_profile.check_images(images)
        n = len(images)
        rows = np.full((n, len(self.names)), np.nan)
        found = dict(drift_profile.image_features(images))
        if probs is not None:
            probs = np.asarray(probs)
            if probs.shape != (n, len(self.class_counts)):
                raise ValueError(f"probs: expected ({n}, {len(self.class_counts)}), got {probs.shape}")
            pca = self.profile["pca"] if embedding is not None and "pca_0" in self.reference else None
            found.update(drift_profile.model_features(probs, None if pca is None else np.asarray(embedding), pca))
        for j, name in enumerate(self.names):
            if name in found:
                rows[:, j] = found[name]
        return rows

    def observe(self, images: np.ndarray, probs: np.ndarray | None = None, embedding: np.ndarray | None = None) -> None:
        """Add a batch: uint8 (N, 32, 32, 3), probs (N, C) or None, embedding (N, D) or None."""
        rows = self.features(images, probs, embedding)
        self.add(rows, np.asarray(probs).argmax(axis=1) if probs is not None else np.full(len(rows), -1))

    def add(self, rows: np.ndarray, classes: np.ndarray) -> None:
        """Add precomputed feature rows (N, len(self.names)) and predicted classes (N,) (-1: none)."""
        with self._lock:
            rows, classes = rows[-self.window :], classes[-self.window :]
            slots = (self._next + np.arange(len(rows))) % self.window
            self._values[slots] = rows
            self._classes[slots] = classes
            self._next = (self._next + len(rows)) % self.window
            self._filled = min(self.window, self._filled + len(rows))
            self._seen += len(rows)
            self._new += len(rows)

    def reset(self) -> None:
        with self._lock:
            self._values[:] = np.nan
            self._classes[:] = -1
            self._next = self._filled = self._new = 0
            self._cached = None

    def window_values(self) -> dict[str, np.ndarray]:
        """The window's observed values per feature (for reports)."""
        with self._lock:
            values = self._values[: self._filled].copy() if self._filled < self.window else self._values.copy()
        return {n: values[:, j][~np.isnan(values[:, j])] for j, n in enumerate(self.names)}

    def status(self) -> DriftStatus:
        with self._lock:
            cached = self._cached
            first = cached is not None and not cached.details["tests"] and self._filled >= self.min_fill
            if cached is None or self._new >= self.retest_every or first:  # stale, or the first full window
                cached = self._cached = self._test()
                self._new = 0
            if self.held is not None and not cached.details["tests"]:  # no verdict of its own yet
                return dataclasses.replace(self.held, filled=int(self._filled))
            return dataclasses.replace(cached, filled=int(self._filled))

    def _test(self) -> DriftStatus:
        values = self._values if self._filled == self.window else self._values[: self._filled]
        classes = self._classes if self._filled == self.window else self._classes[: self._filled]
        tests: dict[str, dict] = {}
        for j, name in enumerate(self.names):
            col = values[:, j][~np.isnan(values[:, j])]
            if len(col) >= self.min_fill:
                stat, p = ks_sorted(col, self.reference[name])
                tests[name] = {"test": "ks", "statistic": stat, "p": p}
        seen = classes[classes >= 0]
        if len(seen) >= self.min_fill:
            stat, p = class_pvalue(seen, self.class_counts)
            tests["predicted_class"] = {"test": "chi2", "statistic": stat, "p": p}
        for t in tests.values():
            t["p_corrected"] = min(1.0, t["p"] * len(tests))  # Bonferroni
            t["drifted"] = t["p_corrected"] < self.alpha
        p_min = min((t["p_corrected"] for t in tests.values()), default=1.0)
        details = {"tests": tests, "alpha": self.alpha, "window": self.window, "min_fill": self.min_fill}
        details["seen"] = self._seen
        return DriftStatus(score_of(p_min), bool(tests) and p_min < self.alpha, int(self._filled), details)


def carry_alarm(old: DriftMonitor | None, new: DriftMonitor | None, source: str) -> bool:
    """A reload must not clear an active alarm: when `old` is raising it, `new` reports it (details
    say from which `source`) until new has a full window of its own to test. True when carried."""
    status = old.status() if old is not None else None
    if new is None or status is None or not status.drifted:
        return False
    new.held = dataclasses.replace(status, details={**status.details, "held_from": source})
    return True
