"""Recovery of a known mixture: ratio = KL(estimate ‖ truth) / KL(uniform ‖ truth) (nats / nats,
the paper's §4.2 direction). < 1: the estimate is closer to the truth than uniform; the paper's own
figure is 0.686 / 0.819 ≈ 0.84. Summaries over (target, seed) pairs: median and fraction < 1."""

from __future__ import annotations

import math

import numpy as np

from lldmix_core.mathcore.divergence import kl_categorical


def recovery_ratio(estimate: np.ndarray, truth: np.ndarray, baseline: np.ndarray | None = None) -> float:
    """KL(estimate ‖ truth) / KL(baseline ‖ truth), baseline uniform by default. Raises if the
    truth equals the baseline (the ratio is undefined)."""
    t = np.asarray(truth, dtype=np.float64)
    base = np.full(t.shape[0], 1.0 / t.shape[0]) if baseline is None else np.asarray(baseline, dtype=np.float64)
    denom = kl_categorical(base, t)
    if not denom > 1e-15:
        raise ValueError("truth equals the baseline: KL(baseline ‖ truth) = 0, the ratio is undefined")
    return kl_categorical(estimate, t) / denom


def recovery_ratios(estimates: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """[N, K] estimates and [N, K] truths (one row per (target, seed) pair) → [N] ratios."""
    E = np.asarray(estimates, dtype=np.float64)
    T = np.asarray(truths, dtype=np.float64)
    if E.shape != T.shape or E.ndim != 2:
        raise ValueError("estimates and truths must both be [N, K]")
    return np.array([recovery_ratio(e, t) for e, t in zip(E, T)])


def _binom_cdf(k: int, n: int) -> float:
    return sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n


def median_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval for the median: order statistics (x_(j), x_(n+1−j)) with j the
    largest index such that P(Bin(n, ½) ≤ j − 1) ≤ (1 − confidence)/2; (−inf, inf) if n is too small."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    alpha = (1.0 - confidence) / 2
    j = 0
    while j + 1 <= n // 2 and _binom_cdf(j, n) <= alpha:
        j += 1
    if j == 0:
        return (-math.inf, math.inf)
    return (float(x[j - 1]), float(x[n - j]))


def wilson_interval(successes: int, n: int, confidence_z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a proportion (default 95 %)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    z2 = confidence_z ** 2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = confidence_z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def recovery_summary(ratios) -> dict:
    """{n, median, median_ci95, fraction_below_1, fraction_below_1_ci95, meets_goal} over the pairs'
    ratios; the goal (issue 13): median ≤ 0.5 and < 1 on ≥ 90 % of pairs."""
    r = np.asarray(ratios, dtype=np.float64)
    if r.ndim != 1 or r.size == 0 or np.any(np.isnan(r)):
        raise ValueError("ratios must be a non-empty 1-D array without NaN")
    below = int(np.sum(r < 1.0))
    med = float(np.median(r))
    frac = below / r.size
    return {"n": int(r.size), "median": med, "median_ci95": median_interval(r),
            "fraction_below_1": frac, "fraction_below_1_ci95": wilson_interval(below, r.size),
            "meets_goal": bool(med <= 0.5 and frac >= 0.9)}
