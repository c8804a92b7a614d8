"""The server's Prometheus metrics (names fixed by the project's contract), in a registry of
its own so several apps (tests) can live in one process.

What a model computes carries `variant` (champion | challenger) and `version` labels: answered
predictions, their errors and latency, confidence, predicted class, drift. HTTP requests and
latency stay by route and status (what the alerts read)."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # images per forward pass
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)  # top-1 probability
VV = ["variant", "version"]


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("cifar100_requests", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram(
            "cifar100_request_latency_seconds", "Request latency", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram("cifar100_batch_size", "Images per forward pass", buckets=BATCH_BUCKETS, registry=r)
        self.predicted = Counter("cifar100_predicted_class", "Top-1 predictions", ["class_name", *VV], registry=r)
        self.confidence = Histogram(
            "cifar100_confidence", "Top-1 probability of each prediction", VV, buckets=CONFIDENCE_BUCKETS, registry=r
        )
        self.model_info = Gauge("cifar100_model_info", "The versions served (1)", ["version", "alias"], registry=r)
        self.reload_failures = Counter(
            "cifar100_model_reload_failures", "Versions that failed to load (the old one kept serving)", registry=r
        )
        self.drift_score = Gauge("cifar100_drift_score", "Drift score of the recent-input window", VV, registry=r)
        self.drift_detected = Gauge("cifar100_drift_detected", "1 when recent inputs drifted", VV, registry=r)
        self._variant_metrics(r)
        self._info: dict[str, tuple[str, str]] = {}  # variant -> (version, alias) in model_info

    def _variant_metrics(self, r: CollectorRegistry) -> None:
        self.answers = Counter(
            "cifar100_predictions", "Answered /predict requests (keyed: had X-Client-Id)", [*VV, "keyed"], registry=r
        )
        self.errors = Counter("cifar100_prediction_errors", "Requests whose forward pass failed", VV, registry=r)
        self.variant_latency = Histogram(
            "cifar100_prediction_latency_seconds", "Queue + forward time", VV, buckets=LATENCY_BUCKETS, registry=r
        )
        self.up = Gauge("cifar100_variant_up", "1 when the variant has a model loaded", ["variant"], registry=r)
        self.fallbacks = Counter(
            "cifar100_variant_fallbacks", "Requests assigned to an unloaded variant", ["wanted"], registry=r
        )
        self.share = Gauge("cifar100_challenger_share", "Challenger share in effect (%)", registry=r)
        self.mode = Gauge("cifar100_serve_mode", "The serving mode (1)", ["mode"], registry=r)
        shadow = ["champion_version", "challenger_version"]
        self.shadow_total = Counter("cifar100_shadow_compared", "Images scored by both (shadow)", shadow, registry=r)
        self.shadow_agreed = Counter("cifar100_shadow_agreed", "Images whose top-1 both agree on", shadow, registry=r)
        self.shadow_dropped = Counter("cifar100_shadow_dropped", "Shadow copies dropped (backlog full)", registry=r)
        self.registry_down_since = Gauge(
            "cifar100_registry_unreachable_since_seconds",
            "Unix time since when the registry is unreachable; 0 when reachable",
            registry=r,
        )

    def serving(self, variant: str, version: str | None, alias: str | None) -> None:
        """`variant` now serves `version` (None: nothing); its old version's gauges go."""
        old = self._info.pop(variant, None)
        if old is not None:
            self.model_info.remove(*old)
            for gauge in (self.drift_score, self.drift_detected):
                try:
                    gauge.remove(variant, old[0])
                except KeyError:  # no batch ran on it
                    pass
        self.up.labels(variant=variant).set(0 if version is None else 1)
        if version is not None:
            self._info[variant] = (version, alias or "")
            self.model_info.labels(version=version, alias=alias or "").set(1)
            for gauge in (self.drift_score, self.drift_detected):  # 0 until the window is tested
                gauge.labels(variant=variant, version=version).set(0)

    def predictions(self, probs: np.ndarray, fine_names: list[str], variant: str = "champion", version: str = ""):
        """Counts and confidences of one batch's top-1 predictions; probs (N, C)."""
        self.batch_size.observe(len(probs))
        top = probs.argmax(axis=1)
        confidence = self.confidence.labels(variant=variant, version=version)
        for idx, conf in zip(top.tolist(), probs[np.arange(len(probs)), top].tolist()):
            self.predicted.labels(class_name=fine_names[idx], variant=variant, version=version).inc()
            confidence.observe(conf)

    def drift(self, status, variant: str = "champion", version: str = "") -> None:
        """Gauges from DriftMonitor.status() (score: float, drifted: bool)."""
        self.drift_score.labels(variant=variant, version=version).set(float(status.score))
        self.drift_detected.labels(variant=variant, version=version).set(1 if status.drifted else 0)
