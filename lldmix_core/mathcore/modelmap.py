"""The model map (Oyama et al. 2025): models as log-likelihood vectors, KL from double-centring.

L [M, N]: log p_i(x_s) of M models on N texts (nats/text). Q = double-centred L. Then
2·KL(p_i, p_j) ≈ ‖q_i − q_j‖² / N, a symmetric second-order estimate. Because q_i − q_j equals
d − mean(d) for d_s = log p_i(x_s) − log p_j(x_s), the estimate is half the (population) variance
over texts of the log-likelihood ratio, whichever other models share the map (clipping aside).
"""

from __future__ import annotations

import math

import numpy as np


def clip_bottom(L: np.ndarray, fraction: float) -> np.ndarray:
    """Raise the lowest `fraction` of the values of L to its `fraction` quantile (the model map's
    "clipped" data against a few texts with extremely low log-likelihood dominating distances).

    Applied over all values of L together; with fraction 0 it returns L unchanged."""
    L = np.asarray(L, dtype=np.float64)
    if fraction <= 0:
        return L
    if not 0 < fraction < 0.5:
        raise ValueError("clip fraction must be in [0, 0.5)")
    return np.maximum(L, np.quantile(L, fraction))


def double_centre(L: np.ndarray) -> np.ndarray:
    """Q = L − row means − column means + grand mean."""
    L = np.asarray(L, dtype=np.float64)
    return L - L.mean(axis=1, keepdims=True) - L.mean(axis=0, keepdims=True) + L.mean()


def kl_matrix(L: np.ndarray, clip: float = 0.0) -> np.ndarray:
    """[M, N] log-likelihoods → [M, M] KL estimates ‖q_i − q_j‖² / (2N) in nats/text."""
    Q = double_centre(clip_bottom(L, clip))
    n = Q.shape[1]
    sq = np.sum(Q * Q, axis=1)
    D = sq[:, None] + sq[None, :] - 2.0 * (Q @ Q.T)
    D = np.maximum(D, 0.0)  # round-off can make tiny negatives
    np.fill_diagonal(D, 0.0)
    return D / (2.0 * n)


def kl_pair(l_i: np.ndarray, l_j: np.ndarray, clip: float = 0.0) -> float:
    """KL estimate between two models in nats/text; with clip = 0, 0.5·var(l_i − l_j)."""
    if clip > 0:
        return float(kl_matrix(np.stack([l_i, l_j]), clip)[0, 1])
    d = np.asarray(l_i, dtype=np.float64) - np.asarray(l_j, dtype=np.float64)
    return float(0.5 * np.mean((d - d.mean()) ** 2))


def nats_per_text_to_bits_per_byte(x, mean_bytes_per_text: float):
    """Convert nats/text to bits/byte: / ln 2 / mean UTF-8 bytes per text."""
    return np.asarray(x, dtype=np.float64) / math.log(2) / mean_bytes_per_text if np.ndim(x) else \
        float(x) / math.log(2) / mean_bytes_per_text


def loglik_gap_bits_per_byte(l_model: np.ndarray, l_ref: np.ndarray, n_bytes: np.ndarray) -> float:
    """Σ(log p_ref − log p_model) / Σ bytes / ln 2: how many bits/byte the model's cross-entropy
    on these texts exceeds the reference's (negative when the model is better)."""
    gap = np.sum(np.asarray(l_ref, dtype=np.float64) - np.asarray(l_model, dtype=np.float64))
    return float(gap / np.sum(n_bytes) / math.log(2))


# --- the model-map authors' clipping rule: one threshold from the pooled matrix -------------------

def clip_threshold(L_pooled: np.ndarray, fraction: float) -> float | None:
    """The single clipping threshold (nats/text) of the model-map authors' rule: the `fraction`
    quantile of ALL values of the pooled [M, N] matrix (every model on the map, target included).
    None when fraction is 0 (no clipping)."""
    if fraction <= 0:
        return None
    if not 0 < fraction < 0.5:
        raise ValueError("clip fraction must be in [0, 0.5)")
    return float(np.quantile(np.asarray(L_pooled, dtype=np.float64), fraction))


def kl_pair_at_threshold(l_i: np.ndarray, l_j: np.ndarray, threshold: float | None) -> float:
    """KL estimate (nats/text) between two models after raising both log-likelihood vectors to a
    threshold fixed beforehand from the pooled matrix (`clip_threshold`); None = no clipping,
    bit-identical to `kl_pair(l_i, l_j, 0)`."""
    if threshold is None:
        return kl_pair(l_i, l_j, 0.0)
    a = np.maximum(np.asarray(l_i, dtype=np.float64), threshold)
    b = np.maximum(np.asarray(l_j, dtype=np.float64), threshold)
    return kl_pair(a, b, 0.0)


def kl_matrix_pooled_clip(L: np.ndarray, fraction: float) -> tuple[np.ndarray, float | None]:
    """[M, N] → ([M, M] KL estimates in nats/text, the threshold used). One threshold from all of L;
    with fraction 0 the matrix is `kl_matrix(L, 0)` exactly and the threshold None."""
    t = clip_threshold(L, fraction)
    if t is None:
        return kl_matrix(L, 0.0), None
    return kl_matrix(np.maximum(np.asarray(L, dtype=np.float64), t), 0.0), t
