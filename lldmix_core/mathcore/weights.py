"""LLD domain weights: α = softmax(Δ/τ) with a prior, the Gram-adjusted variant, and the per-domain
log-likelihood means Δ is the difference of."""

from __future__ import annotations

import math

import numpy as np


def resolve_tau(tau: float | str, delta: np.ndarray) -> float:
    """τ > 0 as a number. "auto" = the spread of Δ across domains (max − min), as the paper advises
    a τ on that scale; 1.0 when Δ has no spread. inf is allowed (weights = prior)."""
    if tau == "auto":
        d = np.asarray(delta, dtype=np.float64)
        spread = float(d.max() - d.min()) if d.size else 0.0
        return spread if spread > 1e-12 and math.isfinite(spread) else 1.0
    t = float(tau)
    if not t > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    return t


def _prior(prior: np.ndarray | None, k: int) -> np.ndarray:
    if prior is None:
        return np.full(k, 1.0 / k)
    p = np.asarray(prior, dtype=np.float64)
    if p.shape != (k,) or np.any(p < 0) or not np.all(np.isfinite(p)) or p.sum() <= 0:
        raise ValueError("prior must be K finite non-negative weights, not all zero")
    return p / p.sum()


def lld_weights(delta: np.ndarray, tau: float, prior: np.ndarray | None = None) -> np.ndarray:
    """α_k ∝ prior_k · exp(Δ_k / τ): the maximiser of ⟨α, Δ⟩ − τ·KL(α‖prior) over the simplex.

    delta [K] = ℓ_target − ℓ_base. Computed in log space (max subtracted), so the result is finite
    and on the simplex for any finite Δ and τ > 0; τ = inf gives the prior."""
    d = np.asarray(delta, dtype=np.float64)
    p = _prior(prior, d.shape[0])
    if math.isinf(tau):
        return p
    support = p > 0
    with np.errstate(over="ignore", invalid="ignore"):
        z = d[support] / tau
    # saturate overflow (huge |Δ| or tiny τ) at ±1e300: finite, and the ordering is kept
    z = np.nan_to_num(z, nan=0.0, posinf=1e300, neginf=-1e300)
    z = np.clip(z - z.max(), -1e4, 0.0)  # exp(-1e4) is 0 in float64: nothing is lost by the clip
    logits = np.log(p[support]) + z
    e = np.exp(logits - logits.max())
    w = np.zeros_like(p)
    w[support] = e / e.sum()
    return w


def gram_solve(gram: np.ndarray, delta: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """(G_n + ridge·I)⁻¹ Δ with G_n = G / (trace(G)/K).

    Scale normalisation: the raw Gram matrix's scale depends on model size and learning signal;
    dividing by its mean eigenvalue makes G = c·I give back Δ/(1 + ridge) for any c, so τ keeps the
    meaning it has for plain LLD. The ridge keeps a singular or ill-conditioned G solvable."""
    G = np.asarray(gram, dtype=np.float64)
    d = np.asarray(delta, dtype=np.float64)
    k = d.shape[0]
    scale = np.trace(G) / k
    Gn = G / scale if scale > 0 else np.eye(k)
    return np.linalg.solve(Gn + ridge * np.eye(k), d)


def adjusted_weights(delta: np.ndarray, gram: np.ndarray, tau: float, prior: np.ndarray | None = None,
                     ridge: float = 1e-3) -> np.ndarray:
    """adjusted-LLD: α = softmax(G⁻¹Δ / τ) with prior (the regularised, scale-normalised solve)."""
    return lld_weights(gram_solve(gram, delta, ridge), tau, prior)


def domain_means(
    loglik: np.ndarray, n_tokens: np.ndarray, n_bytes: np.ndarray, text_domains: list[str],
    domains: tuple[str, ...], unit: str,
) -> np.ndarray:
    """ℓ_k per domain [K]: Σ log p / Σ tokens (unit "token", nats/token) or / Σ bytes ("byte", nats/byte)."""
    dom = np.array(text_domains)
    denom = n_tokens if unit == "token" else n_bytes
    out = np.empty(len(domains))
    for k, d in enumerate(domains):
        m = dom == d
        out[k] = loglik[m].sum() / max(1, denom[m].sum())
    return out


def time_averaged_weights(steps, weights: np.ndarray, total_steps: int) -> np.ndarray:
    """The mixture a run trained on over its steps 0 … total_steps − 1: `weights` [S, K] were in force from
    `steps` [S] (strictly increasing) on, each until the next one and the last until total_steps; the
    first also before its step (what a run stores at its first evaluation is what was in force since step
    0). Each vector counts by the number of training steps it was in force; one set at or after
    total_steps (the final evaluation's) counts for nothing. Returns [K] on the simplex (shares of steps)."""
    s = np.asarray(steps, dtype=np.int64)
    W = np.asarray(weights, dtype=np.float64)
    if W.ndim != 2 or s.shape != (W.shape[0],) or s.size == 0:
        raise ValueError(f"need [S] steps and [S, K] weights, got {s.shape} and {W.shape}")
    if np.any(np.diff(s) <= 0) or s[0] < 0:
        raise ValueError(f"steps must be ≥ 0 and increase strictly, got {s.tolist()}")
    s = np.concatenate([[0], s[1:]])  # the first vector was in force from step 0
    ends = np.minimum(np.append(s[1:], max(int(total_steps), 1)), max(int(total_steps), 1))
    span = np.maximum(ends - np.minimum(s, ends), 0).astype(np.float64)
    if span.sum() <= 0:
        raise ValueError(f"no weights in force during the run's {total_steps} steps")
    mean = span @ W / span.sum()
    return mean / mean.sum()
