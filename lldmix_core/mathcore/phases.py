"""Two-stage recipe: split the per-step weights W [S, K] where their Jensen–Shannon matrix has its
early/late block boundary (appendix C.2), and aggregate each block on its own."""

from __future__ import annotations

import numpy as np

from lldmix_core.mathcore.aggregate import aggregate_arithmetic, aggregate_geometric
from lldmix_core.mathcore.divergence import js_divergence_matrix


def within_block_scatter(jsd: np.ndarray, split: int) -> float:
    """Σ over the blocks [0, split) and [split, S) of (1/n_B) Σ_{i<j in B} JSD_ij (bits): the
    within-cluster scatter (for squared distances, the within-cluster sum of squares)."""
    D = np.asarray(jsd, dtype=np.float64)
    total = 0.0
    for lo, hi in ((0, split), (split, D.shape[0])):
        block = D[lo:hi, lo:hi]
        total += float(np.triu(block, 1).sum()) / (hi - lo)
    return total


def best_split(jsd: np.ndarray, min_block: int = 2) -> int:
    """The index b (first step of the late block) minimising within_block_scatter over every
    split with at least min_block steps per block; ties go to the earliest b."""
    D = np.asarray(jsd, dtype=np.float64)
    s = D.shape[0]
    if D.ndim != 2 or D.shape != (s, s) or not np.all(np.isfinite(D)):
        raise ValueError("jsd must be a finite square [S, S] matrix")
    if min_block < 1 or s < 2 * min_block:
        raise ValueError(f"need at least {2 * min_block} steps to split with min_block={min_block}, got {s}")
    candidates = range(min_block, s - min_block + 1)
    scores = [within_block_scatter(D, b) for b in candidates]
    return list(candidates)[int(np.argmin(scores))]


def two_stage_phases(weights: np.ndarray, steps, total_steps: int, aggregation: str = "geometric",
                     min_block: int = 2) -> list[tuple[float, np.ndarray]]:
    """[S, K] per-step weights at schedule `steps` → [(until_fraction, weights [K]), (1.0, weights)]:
    the early block (steps before the split) aggregated is used until the late block's first step
    (as a fraction of total_steps), the late block aggregated for the rest of the run."""
    W = np.asarray(weights, dtype=np.float64)
    st = np.asarray(steps, dtype=np.float64)
    if W.ndim != 2 or st.shape != (W.shape[0],) or np.any(np.diff(st) <= 0) or st[0] < 0 or st[-1] >= total_steps:
        raise ValueError("weights must be [S, K] with S strictly increasing steps in [0, total_steps)")
    agg = {"geometric": aggregate_geometric, "arithmetic": aggregate_arithmetic}.get(aggregation)
    if agg is None:
        raise ValueError(f"aggregation must be 'geometric' or 'arithmetic', got {aggregation!r}")
    b = best_split(js_divergence_matrix(W), min_block)
    return [(float(st[b] / total_steps), agg(W[:b])), (1.0, agg(W[b:]))]


def phase_starts(untils, total_steps: int) -> list[tuple[int, int]]:
    """Phase ends (fractions of the run, strictly increasing, the last 1.0) → [(first step, phase index)]
    of the phases that get at least one step: phase i runs from round(until_{i-1}·T) (0 for i = 0) up to
    round(until_i·T). A phase that rounds to no step is dropped (its successor starts there instead)."""
    u = [float(x) for x in untils]
    if not u or u[-1] != 1.0 or any(b <= a for a, b in zip(u, u[1:])) or u[0] <= 0 or total_steps < 1:
        raise ValueError("untils must increase strictly in (0, 1] and end at 1.0; total_steps ≥ 1")
    bounds = [0] + [int(round(x * total_steps)) for x in u]
    return [(bounds[i], i) for i in range(len(u)) if bounds[i + 1] > bounds[i]]
