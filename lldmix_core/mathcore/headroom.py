"""Headroom statistics: how much closer *any* mixture could bring the base, and how much of that a
method captures, with seeds as the replicates.

Per seed s (the same initial model, data order and draws from the target for every method):
    H_s = KL(target ‖ uniform_s) − KL(target ‖ oracle_s)        the headroom (oracle = the true mixture)
    a_s = KL(target ‖ uniform_s) − KL(target ‖ method_s)        what the method removed
Headroom captured is the ratio of the means, ā / H̄ (1 = as close as the oracle, 0 = no better than
uniform, < 0 = farther than uniform), with Fieller's 95 % interval over seeds: it is unbounded exactly
when H̄ is not distinguishable from 0, which is what "no headroom" means for a ratio.

All inputs and outputs are in the unit of the inputs (bits/byte here). Pure numpy (scipy for t
quantiles, imported lazily); no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def t_quantile(p: float, dof: int) -> float:
    """The p quantile of Student's t with `dof` degrees of freedom."""
    if dof < 1:
        raise ValueError("degrees of freedom must be ≥ 1")
    from scipy.stats import t as student_t

    return float(student_t.ppf(p, dof))


@dataclass(frozen=True)
class Ratio:
    """A ratio of two means over paired seeds and its 95 % Fieller interval."""

    n: int
    estimate: float  # mean(numerator) / mean(denominator); nan when the denominator's mean is 0
    lo: float  # -inf / +inf where the interval is unbounded on that side
    hi: float
    bounded: bool  # False: the denominator is not distinguishable from 0 (the interval is not finite)

    def text(self, fmt: str = "{:.2f}") -> str:
        if self.n < 2:
            return "n/a (one seed)"
        if not self.bounded:
            return f"{fmt.format(self.estimate)} [unbounded: headroom not distinguishable from 0]"
        return f"{fmt.format(self.estimate)} [{fmt.format(self.lo)}, {fmt.format(self.hi)}]"


def fieller_interval(numerator: np.ndarray, denominator: np.ndarray, level: float = 0.95) -> Ratio:
    """Fieller's interval for mean(numerator)/mean(denominator) over n paired units.

    The set of ρ with (ā − ρ b̄)² ≤ t² · Var(ā − ρ b̄), Var from the paired sample covariances / n,
    t = Student's t with n − 1 dof. When b̄² > t² Var(b̄) the set is the finite interval between the
    roots of the quadratic; otherwise it is unbounded (reported as (−inf, inf) — the complement-of-an-
    interval case is also unbounded and says the same thing: the denominator could be 0)."""
    a = np.asarray(numerator, dtype=np.float64).ravel()
    b = np.asarray(denominator, dtype=np.float64).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired values need equal, non-zero lengths, got {a.size} and {b.size}")
    n = a.size
    abar, bbar = float(a.mean()), float(b.mean())
    est = abar / bbar if bbar != 0 else math.nan
    if n < 2:
        return Ratio(n, est, math.nan, math.nan, False)
    cov = np.cov(np.stack([a, b]), ddof=1) / n  # covariance of the two means
    v11, v12, v22 = float(cov[0, 0]), float(cov[0, 1]), float(cov[1, 1])
    t2 = t_quantile(0.5 + level / 2, n - 1) ** 2
    qa = bbar * bbar - t2 * v22
    qb = abar * bbar - t2 * v12
    qc = abar * abar - t2 * v11
    if qa <= 0:
        return Ratio(n, est, -math.inf, math.inf, False)
    disc = max(0.0, qb * qb - qa * qc)
    root = math.sqrt(disc)
    return Ratio(n, est, (qb - root) / qa, (qb + root) / qa, True)


def min_detectable_effect(sd: float, n: int, *, level: float = 0.95, power: float = 0.8) -> float:
    """The smallest true mean paired difference that a two-sided t test at `level` over n seeds
    detects with probability `power`, given the sd of the paired differences over seeds:
    (t_{(1+level)/2, n−1} + t_{power, n−1}) · sd / √n (nan for n < 2)."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return (t_quantile(0.5 + level / 2, n - 1) + t_quantile(power, n - 1)) * sd / math.sqrt(n)


def cluster_bootstrap_median(values: np.ndarray, clusters, *, n_boot: int = 4000, seed: int = 0,
                             level: float = 0.95) -> tuple[float, float, float]:
    """Median of `values` and a percentile interval that resamples whole clusters with replacement
    (pairs sharing a target are not independent: the target is the unit). Returns (median, lo, hi)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    labels = list(clusters)
    if v.size == 0 or len(labels) != v.size:
        raise ValueError(f"need one cluster label per value, got {len(labels)} labels for {v.size} values")
    keys = list(dict.fromkeys(labels))
    groups = [v[[i for i, c in enumerate(labels) if c == k]] for k in keys]
    rng = np.random.default_rng(seed)
    meds = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, len(groups), size=len(groups))
        meds[b] = np.median(np.concatenate([groups[i] for i in pick]))
    a = (1 - level) / 2
    return float(np.median(v)), float(np.quantile(meds, a)), float(np.quantile(meds, 1 - a))


@dataclass(frozen=True)
class Headroom:
    """The headroom of one setting over its seeds (unit of the inputs)."""

    n: int
    per_seed: tuple[float, ...]  # H_s
    mean: float
    lo: float  # 95 % t interval over seeds (nan for one seed)
    hi: float

    @property
    def detected(self) -> bool:
        """The interval excludes 0 (above it): some mixture brings the base closer than uniform."""
        return self.n >= 2 and self.lo > 0


def headroom(kl_uniform: np.ndarray, kl_oracle: np.ndarray) -> Headroom:
    """H_s = KL_uniform,s − KL_oracle,s per seed, its mean and 95 % t interval over seeds."""
    u = np.asarray(kl_uniform, dtype=np.float64).ravel()
    o = np.asarray(kl_oracle, dtype=np.float64).ravel()
    if u.shape != o.shape or u.size == 0:
        raise ValueError(f"paired values need equal, non-zero lengths, got {u.size} and {o.size}")
    h = u - o
    mean = float(h.mean())
    if h.size < 2:
        return Headroom(1, (mean,), mean, math.nan, math.nan)
    half = t_quantile(0.975, h.size - 1) * float(h.std(ddof=1)) / math.sqrt(h.size)
    return Headroom(int(h.size), tuple(map(float, h)), mean, mean - half, mean + half)


def headroom_captured(kl_uniform: np.ndarray, kl_method: np.ndarray, kl_oracle: np.ndarray) -> Ratio:
    """(KL_uniform − KL_method) / (KL_uniform − KL_oracle): ratio of the means over seeds, Fieller's interval."""
    u = np.asarray(kl_uniform, dtype=np.float64).ravel()
    return fieller_interval(u - np.asarray(kl_method, dtype=np.float64).ravel(),
                            u - np.asarray(kl_oracle, dtype=np.float64).ravel())
