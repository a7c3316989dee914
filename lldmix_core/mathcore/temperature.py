"""Temperature τ for LLD weights α ∝ prior · exp(score / τ); τ has the unit of the scores
(nats/token or nats/byte for Δ; the same for the adjusted scores G_n⁻¹Δ, G_n being unitless)."""

from __future__ import annotations

import math

import numpy as np

SPREADS = ("range", "std")
SHAPES = ("geometric", "linear")


def tau_from_spread(scores: np.ndarray, measure: str = "range") -> float:
    """"auto" τ: the spread of the scores across domains — "range" (max − min, what
    `resolve_tau("auto", Δ)` does) or "std" (population standard deviation, the paper's §6
    suggestion). 1.0 when the scores have no spread. Pass Δ for LLD and the adjusted scores
    G_n⁻¹Δ for adjusted-LLD (their spread is often much larger than Δ's)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)):
        raise ValueError("scores must be a non-empty 1-D array of finite numbers")
    if measure == "range":
        spread = float(s.max() - s.min())
    elif measure == "std":
        spread = float(s.std())
    else:
        raise ValueError(f"spread measure must be one of {SPREADS}, got {measure!r}")
    return spread if spread > 1e-12 and math.isfinite(spread) else 1.0


def annealed_tau(step: float, first_step: float, last_step: float, tau_start: float, tau_end: float,
                 shape: str = "geometric") -> float:
    """τ at `step` of an annealing schedule from tau_start (at first_step and before) to tau_end
    (at last_step and after), by training progress p = (step − first)/(last − first):
    geometric τ = τ_start · (τ_end/τ_start)^p, or linear τ = τ_start + p·(τ_end − τ_start)."""
    if not (tau_start > 0 and tau_end > 0 and math.isfinite(tau_start) and math.isfinite(tau_end)):
        raise ValueError("tau_start and tau_end must be finite and > 0")
    if not last_step > first_step:
        raise ValueError("last_step must be after first_step")
    p = min(1.0, max(0.0, (step - first_step) / (last_step - first_step)))
    # linear as (1 − p)·a + p·b, not a + p·(b − a), so the ends are exactly τ_start and τ_end (the latter
    # form gave 0.00099999… for 257 → 0.001); both shapes clipped into [min, max] against rounding
    if shape == "geometric":
        tau = tau_end if p == 1.0 else tau_start * (tau_end / tau_start) ** p
    elif shape == "linear":
        tau = (1.0 - p) * tau_start + p * tau_end
    else:
        raise ValueError(f"tau schedule shape must be one of {SHAPES}, got {shape!r}")
    return float(min(max(tau_start, tau_end), max(min(tau_start, tau_end), tau)))


def annealed_taus(steps, tau_start: float, tau_end: float, shape: str = "geometric") -> np.ndarray:
    """τ for every schedule step [S] (strictly increasing, S ≥ 2): tau_start at the first step,
    tau_end at the last, interpolated by training progress in steps (not by index, so the dense
    early steps all stay near tau_start)."""
    s = np.asarray(steps, dtype=np.float64)
    if s.ndim != 1 or s.size < 2 or np.any(np.diff(s) <= 0):
        raise ValueError("steps must be ≥ 2 strictly increasing schedule steps")
    return np.array([annealed_tau(x, s[0], s[-1], tau_start, tau_end, shape) for x in s])
