"""Adjusted-LLD with a better-conditioned Gram: normalisation, a ridge from the data, and the
condition number actually used.

Reading of the ridge solve: G = J Jᵀ (J [K, P]: one gradient row per domain) is a linear kernel
over domains and Δ ≈ η G α, so x = (G + λI)⁻¹ Δ are the dual coefficients of kernel ridge
regression of Δ on the domain gradients; the fit is H_λ Δ with H_λ = G (G + λI)⁻¹. Generalised
cross-validation (Golub, Heath & Wahba 1979) picks λ minimising
    GCV(λ) = K · ‖(I − H_λ) Δ‖² / tr(I − H_λ)²,
in G's eigenbasis (G = U diag(σ) Uᵀ, b = Uᵀ Δ, r_i = λ/(σ_i + λ)):  K Σ r_i² b_i² / (Σ r_i)².

Normalisations (both make the mean eigenvalue 1, so λ is relative to G's scale):
- "trace":    G_n = G / (tr G / K);                       solve (G_n + λ I) x = Δ
- "diagonal": C = D^{-1/2} G_n D^{-1/2}, D = diag(G_n);   solve (C + λ I) y = D^{-1/2} Δ, x = D^{-1/2} y
              (the same as (G_n + λ D) x = Δ: each domain damped in proportion to its own variance).
With rescale=True the scores are multiplied by (1 + λ), so G = c·I gives x = Δ for any λ and the ridge
interpolates between G_n⁻¹Δ (λ → 0) and Δ itself, plain LLD's score (λ → ∞), at a fixed τ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NORMALISATIONS = ("trace", "diagonal")


@dataclass(frozen=True)
class GramSolve:
    """scores [K] (units of Δ); ridge λ (unitless, relative to the normalised Gram); condition
    numbers (2-norm, λ_max/λ_min; inf if singular) of the matrix actually factorised and of the
    normalised Gram without ridge."""
    scores: np.ndarray
    ridge: float
    normalisation: str
    condition_number: float
    condition_number_unridged: float


def _cond(eigs: np.ndarray) -> float:
    """λ_max/λ_min; inf when λ_min is 0 to round-off (≤ K·1e-15·λ_max)."""
    lo, hi = float(eigs.min()), float(eigs.max())
    return hi / lo if lo > eigs.size * 1e-15 * hi else math.inf


def _symmetric_psd(gram: np.ndarray, k: int) -> np.ndarray:
    G = np.asarray(gram, dtype=np.float64)
    if G.shape != (k, k) or not np.all(np.isfinite(G)):
        raise ValueError(f"gram must be a finite [{k}, {k}] matrix")
    return 0.5 * (G + G.T)


def normalised_system(gram: np.ndarray, delta: np.ndarray, normalisation: str = "trace"):
    """(A [K, K], y [K], back [K]): the symmetric system A x' = y actually solved, and the factor
    with x = back · x'. A has mean eigenvalue 1 (or is I when G is 0)."""
    d = np.asarray(delta, dtype=np.float64)
    k = d.shape[0]
    G = _symmetric_psd(gram, k)
    scale = np.trace(G) / k
    Gn = G / scale if scale > 0 else np.eye(k)
    if normalisation == "trace":
        return Gn, d, np.ones(k)
    if normalisation == "diagonal":
        diag = np.diag(Gn).copy()
        diag[diag <= 0] = 1.0  # a domain with no gradient: leave it unscaled
        inv_sqrt = 1.0 / np.sqrt(diag)
        return Gn * np.outer(inv_sqrt, inv_sqrt), d * inv_sqrt, inv_sqrt
    raise ValueError(f"gram normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")


def gcv_score(eigenvalues: np.ndarray, b: np.ndarray, ridge: float) -> float:
    """GCV(λ) = K Σ r_i² b_i² / (Σ r_i)², r_i = λ/(σ_i + λ); eigenvalues σ ≥ 0, b = Uᵀ y (units of y²)."""
    sig = np.maximum(np.asarray(eigenvalues, dtype=np.float64), 0.0)
    r = ridge / (sig + ridge)
    return float(sig.size * np.sum(r * r * b * b) / np.sum(r) ** 2)


def gcv_ridge(A: np.ndarray, y: np.ndarray, lo: float = 1e-8, hi: float = 1e3, grid: int = 221) -> float:
    """λ in [lo·σ_max, hi·σ_max] minimising GCV for the system (A + λI) x = y (A symmetric PSD):
    a log-spaced grid, then golden-section refinement in log λ around the best grid point."""
    sig, U = np.linalg.eigh(np.asarray(A, dtype=np.float64))
    b = U.T @ np.asarray(y, dtype=np.float64)
    smax = max(float(sig.max()), 1e-300)
    logs = np.linspace(math.log(lo * smax), math.log(hi * smax), grid)
    vals = np.array([gcv_score(sig, b, math.exp(t)) for t in logs])
    i = int(np.argmin(vals))
    a, c = logs[max(i - 1, 0)], logs[min(i + 1, grid - 1)]
    g = (math.sqrt(5) - 1) / 2
    f = lambda t: gcv_score(sig, b, math.exp(t))  # noqa: E731
    x1, x2 = c - g * (c - a), a + g * (c - a)
    f1, f2 = f(x1), f(x2)
    for _ in range(80):
        if f1 <= f2:
            c, x2, f2 = x2, x1, f1
            x1 = c - g * (c - a)
            f1 = f(x1)
        else:
            a, x1, f1 = x1, x2, f2
            x2 = a + g * (c - a)
            f2 = f(x2)
    best = min((vals[i], logs[i]), (f1, x1), (f2, x2))
    return math.exp(best[1])


def conditioned_gram_solve(gram: np.ndarray, delta: np.ndarray, normalisation: str = "trace",
                           ridge: float | str = 1e-3, ridge_fraction: float = 0.01,
                           rescale: bool = True) -> GramSolve:
    """Adjusted scores from a conditioned Gram. ridge: a number λ ≥ 0 (relative to the normalised
    Gram, whose mean eigenvalue is 1), "gcv" (chosen from Δ by GCV) or "max-eig" (λ = ridge_fraction
    · largest eigenvalue of the normalised system, which bounds its condition number by
    (1 + f)/f). See the module docstring for the systems solved."""
    A, y, back = normalised_system(gram, delta, normalisation)
    sig = np.linalg.eigvalsh(A)
    if ridge == "gcv":
        lam = gcv_ridge(A, y)
    elif ridge == "max-eig":
        if not ridge_fraction > 0:
            raise ValueError("ridge_fraction must be > 0")
        lam = ridge_fraction * max(float(sig.max()), 0.0)
    else:
        lam = float(ridge)
        if not (lam >= 0 and math.isfinite(lam)):
            raise ValueError(f"ridge must be ≥ 0, 'gcv' or 'max-eig', got {ridge!r}")
    x = back * np.linalg.solve(A + lam * np.eye(A.shape[0]), y)
    if rescale:
        x = x * (1.0 + lam)
    return GramSolve(scores=x, ridge=lam, normalisation=normalisation,
                     condition_number=_cond(np.maximum(sig, 0.0) + lam),
                     condition_number_unridged=_cond(np.maximum(sig, 0.0)))
