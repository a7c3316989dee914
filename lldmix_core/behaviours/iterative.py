"""The kinds that re-weight during training at the LLD schedule steps: iterative-LLD, softmax(Δ/τ)·prior,
and adjusted-LLD, softmax(G⁻¹Δ/τ)·prior with the domain Gram matrix of the current model."""

from __future__ import annotations

from lldmix_core import mathcore as mc
from lldmix_core.behaviours.base import Behaviour, Reweighted


class Iterative(Behaviour):
    kind = "lld"
    iterative = True

    def reweight(self, delta, tau, prior, current, gram, ridge):
        return Reweighted(mc.lld_weights(delta, tau, prior), None)


class Adjusted(Behaviour):
    kind = "adjusted"
    iterative = True
    uses_gram = True

    def reweight(self, delta, tau, prior, current, gram, ridge):
        G = gram()
        return Reweighted(mc.adjusted_weights(delta, G, tau, prior, ridge=ridge), G)
