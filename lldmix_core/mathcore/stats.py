"""Paired statistics: differences to a reference on the same units (seeds or samples).

Same seed = same initial model and data order, so a method's result minus the reference's on the
same seed is a paired difference; same sample = the same text drawn from the target. All functions
take and return plain floats/arrays in whatever unit their inputs have (bits/byte here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom (beyond 30: the series below).
_T975 = (12.7062047, 4.3026527, 3.1824463, 2.7764451, 2.5705818, 2.4469119, 2.3646243, 2.3060041, 2.2621572,
         2.2281389, 2.2009852, 2.1788128, 2.1603687, 2.1447867, 2.1314495, 2.1199053, 2.1098156, 2.1009220,
         2.0930241, 2.0859634, 2.0796138, 2.0738731, 2.0686576, 2.0638986, 2.0595386, 2.0555294, 2.0518305,
         2.0484071, 2.0452296, 2.0422725)


def t_quantile_975(dof: int) -> float:
    """Student-t 0.975 quantile (for a two-sided 95 % interval); table to 30 dof, then the
    Cornish–Fisher expansion around the normal (error < 1e-5 beyond 30 dof)."""
    if dof < 1:
        raise ValueError("degrees of freedom must be ≥ 1")
    if dof <= 30:
        return _T975[dof - 1]
    z = 1.959963984540054
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / dof + g2 / dof**2 + g3 / dof**3


def mean_se(x: np.ndarray) -> tuple[float, float]:
    """Sample mean and its standard error sd/√n (sd with n−1); se is nan for n < 2."""
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("no values")
    se = float(np.std(x, ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
    return float(x.mean()), se


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of a − b over paired units (same seeds or same samples)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    return mean_se(a - b)


@dataclass(frozen=True)
class PairedSummary:
    """A method vs the reference over n paired seeds (unit of the inputs)."""

    n: int
    mean_diff: float  # mean of method − reference
    se: float
    lo: float  # 95 % interval
    hi: float
    wins: int  # seeds where the method is strictly lower (lower is better: a KL)
    interval: str  # "t" or "bootstrap"


def paired_summary(method: np.ndarray, reference: np.ndarray, *, interval: str = "t",
                   n_boot: int = 10000, seed: int = 0) -> PairedSummary:
    """Paired difference method − reference over seeds: mean, se, 95 % interval (Student t with
    n−1 dof, or a percentile bootstrap resampling seeds with replacement) and wins (method < ref)."""
    m = np.asarray(method, dtype=np.float64).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    mean, se = paired_difference(m, r)
    d = m - r
    if d.size < 2:
        lo = hi = math.nan
    elif interval == "t":
        half = t_quantile_975(d.size - 1) * se
        lo, hi = mean - half, mean + half
    elif interval == "bootstrap":
        lo, hi = bootstrap_interval(d, n_boot=n_boot, seed=seed)
    else:
        raise ValueError(f"interval must be 't' or 'bootstrap', got {interval!r}")
    return PairedSummary(n=int(d.size), mean_diff=mean, se=se, lo=float(lo), hi=float(hi),
                         wins=int(np.sum(d < 0)), interval=interval)


def bootstrap_interval(d: np.ndarray, *, n_boot: int = 10000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `d` (units resampled with replacement, seeded)."""
    d = np.asarray(d, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of x, ties sharing the mean of the ranks they span."""
    x = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(x, kind="stable")
    ranks = np.empty(x.size)
    sorted_x = x[order]
    i = 0
    while i < x.size:
        j = i
        while j + 1 < x.size and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation of paired values (Pearson's r of the average ranks); nan when
    fewer than 3 pairs or when either side is constant."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"paired values need equal lengths, got {x.size} and {y.size}")
    if x.size < 3:
        return math.nan
    rx, ry = average_ranks(x) - (x.size + 1) / 2, average_ranks(y) - (y.size + 1) / 2
    denom = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / denom if denom > 0 else math.nan
