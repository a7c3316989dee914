"""The sampled KL's arithmetic: per-sample log-ratios, their mean and standard error, in bits/byte.

For texts x_1..x_n drawn from the target p, KL(p ‖ q) = E_p[log p(x) − log q(x)], estimated by the
mean of d_i = log p(x_i) − log q(x_i) (nats/text; unbiased when both are scored on what was drawn)
with standard error sd(d)/√n. bits/byte divides each d_i by ln 2 and the mean bytes per sample
(a fixed scale, so mean and se convert together). Differences between models q_a, q_b on the same
samples are paired: d_a − d_b = log q_b(x) − log q_a(x), the target's log p cancels.
"""

from __future__ import annotations

import math

import numpy as np


def per_sample_log_ratio(logp_target: np.ndarray, logp_model: np.ndarray) -> np.ndarray:
    """d_i = log p_target(x_i) − log p_model(x_i), nats/text, shape [n]."""
    a = np.asarray(logp_target, dtype=np.float64).ravel()
    b = np.asarray(logp_model, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"target and model scores differ in length: {a.size} vs {b.size}")
    return a - b


def to_bits_per_byte(d_nats_per_text: np.ndarray, mean_bytes: float) -> np.ndarray:
    """Per-sample nats/text → bits/byte (÷ ln 2 ÷ mean bytes per sample)."""
    if not mean_bytes > 0:
        raise ValueError("mean bytes per sample must be > 0")
    return np.asarray(d_nats_per_text, dtype=np.float64) / math.log(2) / mean_bytes


def sampled_kl_estimate(d: np.ndarray) -> tuple[float, float]:
    """Mean and standard error (sd with n−1, /√n) of per-sample log-ratios, in their unit."""
    d = np.asarray(d, dtype=np.float64).ravel()
    if d.size < 2:
        raise ValueError("a sampled KL needs at least 2 samples")
    return float(d.mean()), float(np.std(d, ddof=1) / math.sqrt(d.size))
