"""An exponential moving average of iterative-LLD's weights: at each schedule step the mixture moves a
fraction (1 − β) of the way from the weights in force to softmax(Δ/τ)·prior, so one noisy estimate of Δ
moves the mixture less. β = 0 is iterative-LLD. Added as the example of a behaviour that touches its own
module and the registry only (issue 22)."""

from __future__ import annotations

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core.behaviours.base import Behaviour, Reweighted


class EmaIterative(Behaviour):
    kind = "ema-lld"
    iterative = True

    def __init__(self, beta: float = 0.5):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"EMA β must be in [0, 1), got {beta}")
        self.beta = beta

    def reweight(self, delta, tau, prior, current, gram, ridge):
        w = self.beta * np.asarray(current, dtype=float) + (1.0 - self.beta) * mc.lld_weights(delta, tau, prior)
        return Reweighted(w / w.sum(), None)  # a convex combination of two mixtures: on the simplex already
