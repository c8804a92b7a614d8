"""The A/B test's statistics, pure functions over counts and labelled streams (no I/O).

The test is the mixture sequential probability ratio test (mSPRT) of Johari, Pekelis and Walsh,
"Always valid inference: continuous monitoring of A/B tests" (Operations Research, 2022): for the
difference of two proportions theta = p_challenger - p_champion, with the difference's normal
approximation and a N(0, tau^2) mixture over theta, the likelihood ratio after n labels is

    Lambda_n = sqrt(V / (V + tau^2)) * exp(tau^2 * d^2 / (2 V (V + tau^2)))

(d the observed difference, V its variance under H0: theta = 0, from the pooled accuracy).
Lambda is an e-process: under H0, P(Lambda_n >= 1/alpha for ANY n) <= alpha (Ville's inequality),
so the report may be read after every label and acted on at once; 1 / max Lambda is the
always-valid p-value. A fixed-n z-test read repeatedly would promote a same-quality challenger
far more often than alpha (bench/ab.py measures both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

PROMOTE, KEEP, INCONCLUSIVE = "promote", "keep", "inconclusive"


@dataclass(frozen=True)
class AbConfig:
    alpha: float = 0.05  # the chance of any wrong verdict when both variants are equally good
    tau: float = 0.02  # mixture sd of theta: the size of difference the test is tuned to find
    min_per_arm: int = 100  # labels per variant before Lambda counts (the normal approximation's floor)
    mde: float = 0.02  # smallest top-1 difference worth finding (sample size)
    power: float = 0.80  # wanted chance of finding mde (sample size)


@dataclass(frozen=True)
class Verdict:
    verdict: str  # promote | keep | inconclusive
    e_value: float  # max Lambda so far (at the first crossing once crossed)
    p_value: float  # always-valid p-value, min(1, 1 / e_value)
    decided_at: int | None  # labels (both arms) when Lambda first reached 1/alpha; None before
    difference: float  # challenger - champion top-1 at that point (or now, when undecided)


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % for the default z); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def msprt(k_a, n_a, k_b, n_b, tau: float):
    """Lambda for champion (a: k_a correct of n_a) vs challenger (b); numpy arrays work elementwise.
    1 where a variance is 0 (all right or all wrong: no evidence either way)."""
    k_a, n_a, k_b, n_b = (np.asarray(x, dtype=float) for x in (k_a, n_a, k_b, n_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (k_a + k_b) / (n_a + n_b)
        var = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
        diff = k_b / n_b - k_a / n_a
        t2 = tau * tau
        log_lam = 0.5 * np.log(var / (var + t2)) + t2 * diff * diff / (2 * var * (var + t2))
        lam = np.where(var > 0, np.exp(np.minimum(log_lam, 700.0)), 1.0)
    return lam if lam.ndim else float(lam)


def verdict_of_stream(is_challenger: np.ndarray, correct: np.ndarray, cfg: AbConfig) -> Verdict:
    """The verdict after a labelled stream (in label order): Lambda after every label, promote or
    keep at its first crossing of 1/alpha (by the sign of the difference then), else inconclusive."""
    b = np.asarray(is_challenger, dtype=bool)
    c = np.asarray(correct, dtype=bool)
    n_b, k_b = np.cumsum(b), np.cumsum(b & c)
    n_a, k_a = np.cumsum(~b), np.cumsum(~b & c)
    if len(b) == 0:
        return Verdict(INCONCLUSIVE, 1.0, 1.0, None, 0.0)
    ok = (n_a >= cfg.min_per_arm) & (n_b >= cfg.min_per_arm)
    lam = np.where(ok, msprt(k_a, np.maximum(n_a, 1), k_b, np.maximum(n_b, 1), cfg.tau), 1.0)
    diff = k_b / np.maximum(n_b, 1) - k_a / np.maximum(n_a, 1)
    crossed = np.flatnonzero(lam >= 1 / cfg.alpha)
    if crossed.size == 0:
        e = float(lam.max())
        return Verdict(INCONCLUSIVE, e, min(1.0, 1 / e), None, float(diff[-1]))
    at = int(crossed[0])
    e = float(lam[at])
    return Verdict(PROMOTE if diff[at] > 0 else KEEP, e, min(1.0, 1 / e), at + 1, float(diff[at]))


def power_at(n: int, p: float, cfg: AbConfig) -> float:
    """Chance that Lambda is past 1/alpha with n labels per arm when the challenger is mde better
    than a champion of accuracy p (normal approximation, one look at n: a lower bound for a test
    read all along)."""
    q = min(p + cfg.mde, 1.0)
    var0 = 2 * p * (1 - p) / n  # H0 variance with pooled accuracy ~ p
    t2 = cfg.tau * cfg.tau
    # |d| at which Lambda = 1/alpha, solved from the formula above
    bound = math.sqrt(2 * var0 * (var0 + t2) / t2 * (math.log(1 / cfg.alpha) + 0.5 * math.log((var0 + t2) / var0)))
    sd1 = math.sqrt((p * (1 - p) + q * (1 - q)) / n)
    return float(norm.sf((bound - cfg.mde) / sd1))


def needed_per_arm(p: float, cfg: AbConfig) -> int:
    """Smallest labels per arm (to 1 %) with power_at >= cfg.power; p the champion's accuracy."""
    if not 0 < p < 1:
        p = 0.5  # no information yet: the largest variance
    lo, hi = 1, max(cfg.min_per_arm, 16)
    while power_at(hi, p, cfg) < cfg.power:
        lo, hi = hi, hi * 2
    while hi - lo > max(1, hi // 100):
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power_at(mid, p, cfg) >= cfg.power else (mid, hi)
    return max(hi, cfg.min_per_arm)
