"""The server's Prometheus metrics (names fixed by the project's contract), in a registry of
its own so several apps (tests) can live in one process."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # images per forward pass
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)  # top-1 probability


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("cifar100_requests", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram(
            "cifar100_request_latency_seconds", "Request latency", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram("cifar100_batch_size", "Images per forward pass", buckets=BATCH_BUCKETS, registry=r)
        self.predicted = Counter("cifar100_predicted_class", "Top-1 predictions", ["class_name"], registry=r)
        self.confidence = Histogram(
            "cifar100_confidence", "Top-1 probability of each prediction", buckets=CONFIDENCE_BUCKETS, registry=r
        )
        self.model_info = Gauge("cifar100_model_info", "The version served (1)", ["version", "alias"], registry=r)
        self.reload_failures = Counter(
            "cifar100_model_reload_failures", "Versions that failed to load (the old one kept serving)", registry=r
        )
        self.drift_score = Gauge("cifar100_drift_score", "Drift score of the recent-input window", registry=r)
        self.drift_detected = Gauge("cifar100_drift_detected", "1 when recent inputs drifted", registry=r)

    def serving(self, version: str, alias: str | None) -> None:
        self.model_info.clear()
        self.model_info.labels(version=version, alias=alias or "").set(1)

    def predictions(self, probs: np.ndarray, fine_names: list[str]) -> None:
        """Counts and confidences of one batch's top-1 predictions; probs (N, C)."""
        self.batch_size.observe(len(probs))
        top = probs.argmax(axis=1)
        for idx, conf in zip(top.tolist(), probs[np.arange(len(probs)), top].tolist()):
            self.predicted.labels(class_name=fine_names[idx]).inc()
            self.confidence.observe(conf)

    def drift(self, status) -> None:
        """Gauges from DriftMonitor.status() (score: float, drifted: bool)."""
        self.drift_score.set(float(status.score))
        self.drift_detected.set(1 if status.drifted else 0)
