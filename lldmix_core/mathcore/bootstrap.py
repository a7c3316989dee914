"""Text-sampling noise of the model-map KL estimate: a bootstrap over the evaluation texts.

The estimate for models (i, j) on N texts is 0.5·var_s(d_s), d_s = log p_i(x_s) − log p_j(x_s)
(nats/text; clip 0); in bits/byte it is divided by ln 2 and the mean bytes per text. Resampling the
N texts with replacement and recomputing both gives the standard error that comes from which texts
the corpus happened to draw (not from training noise or the seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BootstrapKL:
    bits_per_byte: float  # the estimate on all texts
    se_bits_per_byte: float  # bootstrap standard error
    nats_per_text: float
    se_nats_per_text: float
    n_texts: int
    n_boot: int

    @property
    def relative_se(self) -> float:
        return self.se_bits_per_byte / self.bits_per_byte if self.bits_per_byte > 0 else float("nan")


def _kl_bpb(d: np.ndarray, n_bytes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d [B, N], n_bytes [B, N] → (nats/text [B], bits/byte [B])."""
    npt = 0.5 * d.var(axis=1)
    return npt, npt / math.log(2) / n_bytes.mean(axis=1)


def _indices(n: int, n_boot: int, seed: int, chunk: int = 256):
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_boot - start), n))


def kl_bootstrap(l_model: np.ndarray, l_ref: np.ndarray, n_bytes: np.ndarray, *, n_boot: int = 2000,
                 seed: int = 0) -> BootstrapKL:
    """Model-map KL estimate (clip 0) between two models and its bootstrap SE over texts.

    l_model, l_ref: log-likelihoods [N] (nats/text) on the same texts; n_bytes: UTF-8 bytes [N]."""
    d = np.asarray(l_model, np.float64) - np.asarray(l_ref, np.float64)
    b = np.asarray(n_bytes, np.float64)
    if d.ndim != 1 or d.shape != b.shape or len(d) < 2 or n_boot < 2:
        raise ValueError("need two log-likelihood vectors and byte counts of the same length ≥ 2, and n_boot ≥ 2")
    npt, bpb = _kl_bpb(d[None], b[None])
    boot_n, boot_b = [], []
    for idx in _indices(len(d), n_boot, seed):
        x, y = _kl_bpb(d[idx], b[idx])
        boot_n.append(x)
        boot_b.append(y)
    boot_n, boot_b = np.concatenate(boot_n), np.concatenate(boot_b)
    return BootstrapKL(float(bpb[0]), float(boot_b.std(ddof=1)), float(npt[0]), float(boot_n.std(ddof=1)),
                       len(d), n_boot)


def kl_difference_bootstrap(l_a: np.ndarray, l_b: np.ndarray, l_ref: np.ndarray, n_bytes: np.ndarray, *,
                            n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """KL(a, ref) − KL(b, ref) in bits/byte and its bootstrap SE, resampling the same texts for both
    (paired: what a method comparison on one corpus sees)."""
    da = np.asarray(l_a, np.float64) - np.asarray(l_ref, np.float64)
    db = np.asarray(l_b, np.float64) - np.asarray(l_ref, np.float64)
    b = np.asarray(n_bytes, np.float64)
    est = float(_kl_bpb(da[None], b[None])[1][0] - _kl_bpb(db[None], b[None])[1][0])
    diffs = [_kl_bpb(da[idx], b[idx])[1] - _kl_bpb(db[idx], b[idx])[1] for idx in _indices(len(b), n_boot, seed)]
    return est, float(np.concatenate(diffs).std(ddof=1))
