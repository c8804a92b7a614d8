"""ops.abstats on constructed inputs: Wilson intervals, the mSPRT's Lambda, the stream verdict
(promote, keep, inconclusive, the first crossing sticks), the sample size."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from ops import abstats
from ops.abstats import KEEP, PROMOTE, AbConfig


def test_wilson_matches_scipy_and_the_edges():
    assert abstats.wilson(75, 100) == pytest.approx((0.656955364519384, 0.8245478863771232), abs=1e-12)
    for k, n in [(0, 10), (10, 10), (3, 7), (750, 1000)]:
        ci = binomtest(k, n).proportion_ci(method="wilson")
        assert abstats.wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert abstats.wilson(0, 0) == (0.0, 1.0)


def test_msprt_by_hand():
    # Equal counts: d = 0, V = 0.25 * (1/100 + 1/100) = 0.005, Lambda = sqrt(V / (V + tau^2)).
    assert abstats.msprt(50, 100, 50, 100, 0.02) == pytest.approx(math.sqrt(0.005 / 0.0054), rel=1e-12)
    # 50/100 vs 70/100: pooled 0.6, V = 0.0048, d = 0.2.
    expect = math.sqrt(0.0048 / 0.0052) * math.exp(0.0004 * 0.04 / (2 * 0.0048 * 0.0052))
    assert abstats.msprt(50, 100, 70, 100, 0.02) == pytest.approx(expect, rel=1e-12)
    assert abstats.msprt(100, 100, 100, 100, 0.02) == 1.0  # no variance, no evidence
    # Symmetric in the sign of the difference; elementwise on arrays.
    both = abstats.msprt(np.array([50, 70]), 100, np.array([70, 50]), 100, 0.02)
    assert both[0] == pytest.approx(both[1]) == pytest.approx(expect)


def _stream(n_each: int, acc_a: float, acc_b: float) -> tuple[np.ndarray, np.ndarray]:
    """Alternating champion/challenger labels with exactly acc * n correct, spread evenly."""
    idx = np.arange(n_each)
    correct_a = np.floor((idx + 1) * acc_a) > np.floor(idx * acc_a)
    correct_b = np.floor((idx + 1) * acc_b) > np.floor(idx * acc_b)
    return np.tile([False, True], n_each), np.stack([correct_a, correct_b], axis=1).ravel()


def test_verdicts_on_constructed_streams():
    cfg = AbConfig()
    better = abstats.verdict_of_stream(*_stream(5000, 0.70, 0.80), cfg)
    worse = abstats.verdict_of_stream(*_stream(5000, 0.80, 0.70), cfg)
    same = abstats.verdict_of_stream(*_stream(5000, 0.75, 0.75), cfg)
    assert better.verdict == PROMOTE and worse.verdict == KEEP and same.verdict == "inconclusive"
    assert better.e_value >= 20 and better.p_value == pytest.approx(1 / better.e_value) and better.p_value <= 0.05
    assert better.decided_at is not None and 200 <= better.decided_at < 10_000
    assert better.difference > 0 > worse.difference
    assert same.decided_at is None and same.p_value > 0.05 and abs(same.difference) < 1e-3


def test_the_first_crossing_sticks_and_small_arms_do_not_count():
    cfg = AbConfig(min_per_arm=100)
    b, c = _stream(3000, 0.60, 0.80)
    first = abstats.verdict_of_stream(b, c, cfg)
    # The challenger then loses badly: the verdict made at the first crossing stands.
    b2, c2 = _stream(20_000, 0.95, 0.10)
    later = abstats.verdict_of_stream(np.concatenate([b, b2]), np.concatenate([c, c2]), cfg)
    assert first.verdict == later.verdict == PROMOTE and first.decided_at == later.decided_at
    tiny = abstats.verdict_of_stream(*_stream(99, 0.0, 1.0), cfg)  # huge difference, 99 per arm
    assert (tiny.verdict, tiny.e_value) == ("inconclusive", 1.0)
    assert abstats.verdict_of_stream(np.array([], bool), np.array([], bool), cfg).verdict == "inconclusive"


def test_sample_size():
    cfg = AbConfig(alpha=0.05, tau=0.02, mde=0.02, power=0.8)
    n = abstats.needed_per_arm(0.75, cfg)
    assert 0.8 <= abstats.power_at(n, 0.75, cfg) < 0.81
    assert abstats.power_at(int(n * 0.97), 0.75, cfg) < 0.8
    # More than a fixed-n z-test needs (~7,350 per arm at 0.75): the price of reading at any time.
    assert 7_350 < n < 30_000
    assert abstats.needed_per_arm(0.5, cfg) > n  # p(1-p) is largest at 0.5
    assert abstats.needed_per_arm(0.75, AbConfig(mde=0.04)) < n / 2
