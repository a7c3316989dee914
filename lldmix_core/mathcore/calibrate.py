"""Learnability-calibrated Δ.

Plain Δ_k = ℓ_target,k − ℓ_base,k (mean log-likelihood per token or byte, nats) is large both for
domains the target saw more of and for domains that are simply easy to learn (a short, repetitive
domain gains likelihood fast whatever the mixture). Subtract what Δ would be for a reference target
trained on *uniform* weights with the same budget (same architecture, steps, data):
    Δ_cal = (ℓ_target − ℓ_base) − (ℓ_reference − ℓ_base) = ℓ_target − ℓ_reference.
Positive where the target beats a uniformly trained model of the same budget — what the target was
trained on, with learnability cancelled. The base cancels: Δ_cal is the same at every schedule
step, so iterative-LLD with it gives constant per-step weights and needs no pass 1 to aggregate
(softmax(Δ_cal/τ) is the whole estimate). For a real target the reference is a user-supplied model
trained uniformly on the same domains with a comparable budget.
"""

from __future__ import annotations

import numpy as np


def calibrated_delta(l_target: np.ndarray, l_reference: np.ndarray, l_base: np.ndarray | None = None) -> np.ndarray:
    """[..., K] mean log-likelihoods (nats/token or nats/byte, all in the same unit) → Δ_cal [..., K]
    = ℓ_target − ℓ_reference. l_base, if given ([..., K], e.g. one row per schedule step), is
    only checked for shape and finiteness: it cancels."""
    t = np.asarray(l_target, dtype=np.float64)
    r = np.asarray(l_reference, dtype=np.float64)
    arrays = {"l_target": t, "l_reference": r}
    if l_base is not None:
        arrays["l_base"] = np.asarray(l_base, dtype=np.float64)
    for name, a in arrays.items():
        if a.ndim == 0 or not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be finite per-domain log-likelihoods")
    k = t.shape[-1]
    for name, a in arrays.items():
        if a.shape[-1] != k:
            raise ValueError(f"{name} has {a.shape[-1]} domains, l_target has {k}")
    out = t - r
    if l_base is not None:
        out = np.broadcast_to(out, np.broadcast_shapes(out.shape, arrays["l_base"].shape)).copy()
    return out
