"""Aggregation variants of per-step LLD weights W [S, K] (S schedule steps, K domains).

All return one recipe [K] on the simplex. The step weights c [S] say how much each step counts:
the weighted geometric mean ᾱ ∝ exp(Σ_s c_s log w_s / Σ_s c_s) is the minimiser over the simplex
of Σ_s c_s · KL(ᾱ ‖ w_s) (nats); equal c gives the paper's plain geometric mean.
"""

from __future__ import annotations

import numpy as np


def _steps_array(steps, total_steps: int) -> np.ndarray:
    s = np.asarray(steps, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError("steps must be a non-empty 1-D list of schedule steps")
    if total_steps < 1 or np.any(s < 0) or np.any(s >= total_steps) or np.any(np.diff(s) <= 0):
        raise ValueError("steps must be strictly increasing, in [0, total_steps)")
    return s


def progress_step_weights(steps, total_steps: int) -> np.ndarray:
    """c_s = step_s / total_steps: how far training had got when step s's weights were estimated
    (step 0, the untrained base, counts 0). [S] → [S], unnormalised (fractions of the run)."""
    s = _steps_array(steps, total_steps)
    c = s / total_steps
    if not np.any(c > 0):
        raise ValueError("steps: progress weights need a step after 0")
    return c


def token_share_step_weights(steps, total_steps: int, tokens_per_step=None) -> np.ndarray:
    """c_s = the share of the run's training tokens trained with step s's weights in iterative-LLD:
    the weights estimated at schedule step t_s are used from t_s until t_{s+1} (the last until
    total_steps). With a constant batch that is (t_{s+1} − t_s) / total_steps; `tokens_per_step`
    [total_steps] (tokens per optimiser step) handles a varying batch. Sums to the share of the run
    from the first schedule step on (1 when the schedule starts at 0)."""
    s = _steps_array(steps, total_steps).astype(np.int64)
    edges = np.append(s, total_steps)
    if tokens_per_step is None:
        tok = np.ones(total_steps)
    else:
        tok = np.asarray(tokens_per_step, dtype=np.float64)
        if tok.shape != (total_steps,) or np.any(tok < 0) or not np.all(np.isfinite(tok)) or tok.sum() <= 0:
            raise ValueError("tokens_per_step must be total_steps finite non-negative numbers, not all 0")
    cum = np.concatenate([[0.0], np.cumsum(tok)])
    return (cum[edges[1:]] - cum[edges[:-1]]) / cum[-1]


def aggregate_weighted_geometric(weights: np.ndarray, step_weights) -> np.ndarray:
    """[S, K], c [S] ≥ 0 (not all 0) → [K]: ᾱ ∝ exp(Σ c_s log w_s / Σ c_s).

    Steps with c_s = 0 are ignored. A domain with weight exactly 0 at a counted step gets 0; if that
    leaves nothing, the c-weighted arithmetic mean is returned instead."""
    W = np.asarray(weights, dtype=np.float64)
    c = np.asarray(step_weights, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] == 0:
        raise ValueError("weights must be a non-empty [S, K] array")
    if c.shape != (W.shape[0],) or np.any(c < 0) or not np.all(np.isfinite(c)) or c.sum() <= 0:
        raise ValueError("step_weights must be S finite non-negative numbers, not all 0")
    c = c / c.sum()
    used = c > 0
    with np.errstate(divide="ignore"):
        logs = np.log(W[used])
    mean_log = (c[used, None] * logs).sum(axis=0)  # -inf where a counted step has a 0
    if not np.any(np.isfinite(mean_log)):
        out = (c[:, None] * W).sum(axis=0)
        return out / out.sum()
    m = mean_log[np.isfinite(mean_log)].max()
    out = np.where(np.isfinite(mean_log), np.exp(mean_log - m), 0.0)
    return out / out.sum()


def late_step_mask(steps, total_steps: int, from_fraction: float) -> np.ndarray:
    """[S] bool: schedule steps at or after from_fraction · total_steps (from_fraction in [0, 1))."""
    s = _steps_array(steps, total_steps)
    if not 0.0 <= from_fraction < 1.0:
        raise ValueError(f"from_fraction must be in [0, 1), got {from_fraction}")
    mask = s >= from_fraction * total_steps
    if not mask.any():
        raise ValueError(f"no schedule step at or after {from_fraction} of {total_steps} steps")
    return mask


def aggregate_late(weights: np.ndarray, steps, total_steps: int, from_fraction: float) -> np.ndarray:
    """[S, K] → [K]: the plain geometric mean of the steps at or after from_fraction of the run."""
    W = np.asarray(weights, dtype=np.float64)
    mask = late_step_mask(steps, total_steps, from_fraction)
    if W.ndim != 2 or W.shape[0] != mask.size:
        raise ValueError("weights must be [S, K] with one row per schedule step")
    return aggregate_weighted_geometric(W, mask.astype(np.float64))
