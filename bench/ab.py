"""Claim: the A/B test of `make ab-report` (ops/abstats.py: the mSPRT, read after every batch of
feedback) promotes a challenger that is no better than the champion in at most 5 % of A/A
experiments, and finds a 2-point top-1 gain with at least 80 % chance at the traffic it recommends.

Method: each experiment is a stream of labelled requests, each sent to champion or challenger with
chance 1/2, until both have about the recommended labels per arm (ops.abstats.needed_per_arm at
the model's accuracy, AB mde 2 points, 80 % power). A label is right as a real model is: drawn
with replacement from the per-image correctness of a real CIFAR-100 test evaluation
(reports/confusion.csv, one (actual, predicted) row per test image) when there is one, else a
Bernoulli with p = 0.75 (`source` says which). A/A: both arms draw alike. Power: the challenger
additionally gets a wrong answer right with chance 0.02 / (1 - p), 2 points more top-1. The
report's verdict (ops.abstats.verdict_of_stream, as `make ab-report` computes it) is read after
every --batch labels; `promote` at any read counts. Baseline: a fixed-n two-proportion z-test
(one-sided, 5 %) read after every batch, the usual peeking mistake; ratio = its false-promotion
rate / the mSPRT's.

Serving cost (bench/ab_serving.py, skipped with --no-serving): the real server in single, ab
(share 50 %) and shadow mode at --concurrency: ab_throughput_ratio (ab / single requests/s, goal
>= 0.9) and shadow_p99_ratio (the champion's p99 in shadow / single's, goal <= 1.2).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import norm

from bench._common import commit
from ops import abstats

ROOT = Path(__file__).resolve().parent.parent


def correctness(path: Path) -> tuple[np.ndarray | None, str]:
    """Per-test-image right/wrong from an evaluation's confusion.csv, or None and why not."""
    if not path.exists():
        return None, f"bernoulli p=0.75 (no {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path})"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    right = np.array([r["actual"] == r["predicted"] for r in rows], dtype=bool)
    return right, f"{path.name}: {len(right)} real CIFAR-100 test predictions"


def experiment(rng, right: np.ndarray | None, p: float, labels: int, gain: float, batch: int, cfg) -> tuple[bool, bool]:
    """One stream: (mSPRT promoted at some read, peeking z-test promoted at some read)."""
    b = rng.random(labels) < 0.5
    c = rng.choice(right, labels) if right is not None else rng.random(labels) < p
    if gain:
        c = c | (b & (rng.random(labels) < gain / (1 - p)))
    reads = np.arange(batch, labels + 1, batch)
    verdict = abstats.verdict_of_stream(b, c, cfg)  # first crossing over every label = reads after each batch
    promoted = verdict.verdict == abstats.PROMOTE and verdict.decided_at is not None and verdict.decided_at <= reads[-1]
    n_b, k_b = np.cumsum(b)[reads - 1], np.cumsum(b & c)[reads - 1]
    n_a, k_a = reads - n_b, np.cumsum(~b & c)[reads - 1]
    ok = (n_a >= cfg.min_per_arm) & (n_b >= cfg.min_per_arm)
    pooled = (k_a + k_b) / reads
    se = np.sqrt(np.maximum(pooled * (1 - pooled) * (1 / np.maximum(n_a, 1) + 1 / np.maximum(n_b, 1)), 1e-12))
    z = (k_b / np.maximum(n_b, 1) - k_a / np.maximum(n_a, 1)) / se
    return promoted, bool(np.any(ok & (z > norm.isf(cfg.alpha))))


def run(args) -> dict:
    cfg = abstats.AbConfig(alpha=args.alpha, tau=args.tau, mde=args.mde, power=0.8)
    right, source = correctness(args.confusion)
    p = float(right.mean()) if right is not None else 0.75
    per_arm = abstats.needed_per_arm(p, cfg)
    rng = np.random.default_rng(args.seed)
    aa = [experiment(rng, right, p, 2 * per_arm, 0.0, args.batch, cfg) for _ in range(args.experiments)]
    ab = [experiment(rng, right, p, 2 * per_arm, args.mde, args.batch, cfg) for _ in range(args.experiments)]
    aa_rate = float(np.mean([m for m, _ in aa]))
    naive = float(np.mean([z for _, z in aa]))
    return {
        "bench": "ab",
        "source": source,
        "top1": round(p, 4),
        "test": "mSPRT, normal mixture (Johari et al. 2022)",
        "alpha": args.alpha,
        "tau": args.tau,
        "experiments": args.experiments,
        "batch": args.batch,
        "recommended_per_arm": per_arm,
        "aa_false_promotion_rate": aa_rate,
        "aa_goal": 0.05,
        "mde": args.mde,
        "power_at_recommended_n": float(np.mean([m for m, _ in ab])),
        "power_predicted": round(abstats.power_at(per_arm, p, cfg), 4),
        "baseline_peeking_z_false_promotion_rate": naive,
        "ratio": round(naive / aa_rate, 2) if aa_rate else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", type=int, default=200)
    ap.add_argument("--batch", type=int, default=100, help="labels between two reads of the report")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--tau", type=float, default=0.02)
    ap.add_argument("--mde", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--confusion", type=Path, default=ROOT / "reports" / "confusion.csv")
    ap.add_argument("--no-serving", action="store_true", help="skip the serving-cost measurement")
    ap.add_argument("--concurrency", type=int, default=32, help="serving cost: requests in flight")
    ap.add_argument("--serving-seconds", type=float, default=5.0, help="serving cost: seconds per repeat")
    ap.add_argument("--serving-repeats", type=int, default=3, help="serving cost: repeats per mode")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    result = run(args)
    if not args.no_serving:
        from bench import ab_serving

        result.update(ab_serving.measure(args.concurrency, args.serving_seconds, args.serving_repeats))
    result.update(seconds=round(time.perf_counter() - start, 1), commit=commit(ROOT))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
