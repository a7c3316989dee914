"""What a mixture means once a trainer runs it: intended vs realized token shares, and repetition.

Shapes: K domains; weights [K] on the simplex; token counts [K] (tokens); `weights_by_step` maps the
first step a mixture is in force to its weights [K]. Epochs are (tokens trained on a domain) / (unique
tokens of the domain): how many times the training stream of that domain is read, on average.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def total_variation(p, q) -> float:
    """½ Σ_k |p_k − q_k| between two distributions [K]: a share of tokens in [0, 1]."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"total_variation: shapes {p.shape} and {q.shape} differ")
    return float(0.5 * np.abs(p - q).sum())


def intended_token_shares(weights_by_step: Mapping[int, np.ndarray], total_steps: int) -> np.ndarray:
    """The expected token share per domain [K] of a run whose mixture changes at the given steps: the
    weights in force at each step, averaged over the run's `total_steps` steps (each step trains the same
    number of tokens). The earliest mixture counts from step 0 (a fixed mixture may be recorded only at
    the end); other mixtures at steps ≥ total_steps (recorded after the last update) count for nothing."""
    if total_steps < 1:
        raise ValueError("total_steps must be ≥ 1")
    if not weights_by_step:
        raise ValueError("no mixture given")
    starts = sorted(s for s in weights_by_step if s < total_steps) or [min(weights_by_step)]
    edges = [0] + starts[1:] + [total_steps]  # step starts[0]'s mixture is in force from step 0
    out = np.zeros_like(np.asarray(weights_by_step[starts[0]], dtype=np.float64))
    for s, a, b in zip(starts, edges[:-1], edges[1:]):
        out += (b - a) * np.asarray(weights_by_step[s], dtype=np.float64)
    return out / total_steps


def realized_tokens(domain_per_step, n_domains: int, tokens_per_step: int) -> np.ndarray:
    """Tokens trained per domain [K] when step i trained `tokens_per_step` tokens of domain index
    domain_per_step[i] (one domain per step)."""
    idx = np.asarray(domain_per_step, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n_domains):
        raise ValueError(f"domain indices must lie in [0, {n_domains})")
    return np.bincount(idx, minlength=n_domains).astype(np.float64) * float(tokens_per_step)


def implied_epochs(weights, budget_tokens: float, unique_tokens) -> np.ndarray:
    """Epochs per domain [K] = weight × budget (tokens) / unique tokens of the domain; inf for a domain
    with weight > 0 and no unique tokens."""
    w, u = np.asarray(weights, dtype=np.float64), np.asarray(unique_tokens, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = w * float(budget_tokens) / u
    return np.where(w > 0, e, 0.0)


def cap_epochs(weights, budget_tokens: float, unique_tokens, max_epochs: float) -> np.ndarray:
    """The weights [K] closest in spirit to `weights` under which no domain exceeds `max_epochs` epochs
    at `budget_tokens`: iterative water-filling — clip every domain over its cap c_k = max_epochs ×
    unique_k / budget to c_k, spread the excess over the unclipped domains in proportion to their
    weights, repeat until none is over. Raises ValueError when Σ c_k < 1 (no mixture fits the cap)."""
    w = np.asarray(weights, dtype=np.float64)
    cap = float(max_epochs) * np.asarray(unique_tokens, dtype=np.float64) / float(budget_tokens)
    if max_epochs <= 0 or budget_tokens <= 0:
        raise ValueError("max_epochs and budget_tokens must be > 0")
    if cap.sum() < 1.0 - 1e-12:
        raise ValueError(f"no mixture fits {max_epochs:g} epochs: the domains hold {cap.sum() * budget_tokens / max_epochs:.0f} "
                         f"unique tokens, the budget needs {budget_tokens / max_epochs:.0f}")
    out = w / w.sum()
    clipped = np.zeros(w.shape, dtype=bool)
    for _ in range(w.size + 1):
        over = (out > cap * (1 + 1e-12)) & ~clipped
        if not over.any():
            return out
        clipped |= over
        out[clipped] = cap[clipped]
        free = ~clipped
        room = 1.0 - out[clipped].sum()
        base = w[free].sum()
        # the unclipped domains share what is left in proportion to their original weights (all of it to
        # the zero-weight ones, evenly, only when no positive weight is left to scale)
        out[free] = w[free] / base * room if base > 0 else room / max(1, free.sum())
    return out
