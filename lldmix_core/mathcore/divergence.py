"""Divergences between domain-weight vectors (categorical distributions over domains)."""

from __future__ import annotations

import math

import numpy as np


def kl_categorical(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) in nats; 0·log(0/q) = 0; inf where q_k = 0 < p_k."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    mask = p > 0
    if np.any(q[mask] <= 0):
        return math.inf
    return float(max(0.0, np.sum(p[mask] * (np.log(p[mask]) - np.log(q[mask])))))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence in bits, in [0, 1]."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = 0.5 * (p + q)
    js = 0.5 * kl_categorical(p, m) + 0.5 * kl_categorical(q, m)
    return float(min(1.0, max(0.0, js / math.log(2))))


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """sqrt of the JS divergence (bits): a metric on distributions."""
    return math.sqrt(js_divergence(p, q))


def js_divergence_matrix(weights: np.ndarray) -> np.ndarray:
    """[S, K] weights per step → [S, S] Jensen–Shannon divergences in bits (symmetric, zero diagonal)."""
    W = np.asarray(weights, dtype=np.float64)
    n = W.shape[0]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = js_divergence(W[i], W[j])
    return out


def js_distance_matrix(weights: np.ndarray) -> np.ndarray:
    """[S, K] weights per step → [S, S] JS distances, sqrt of the divergences (appendix C's
    early/late blocks)."""
    return np.sqrt(js_divergence_matrix(weights))


def weight_recovery(truth: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """§4.2's weight-recovery distance in the paper's direction and the reverse, nats:
    (KL(weights ‖ truth), KL(truth ‖ weights)). The paper's 0.819 is KL(uniform ‖ truth)."""
    return kl_categorical(weights, truth), kl_categorical(truth, weights)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total-variation distance ½ Σ_k |p_k − q_k| between two [K] weight vectors on the simplex, in [0, 1]
    (a share of the mixture: the weight that would have to move to turn one into the other)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"weights must be two [K] vectors of the same length, got {p.shape} and {q.shape}")
    return float(min(1.0, max(0.0, 0.5 * np.abs(p - q).sum())))


def overlap_accuracy(estimate: np.ndarray, truth: np.ndarray) -> float:
    """1 − TV(estimate, truth), in [0, 1]: the share of the mixture the estimate gets right, Σ_k min(p_k, q_k)
    on the simplex (1: the truth exactly; 0: disjoint supports). Recovery benchmarks report it beside KL."""
    return 1.0 - total_variation(estimate, truth)
