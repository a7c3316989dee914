"""One check shared by every kind of mixture: weights are a distribution over domains (no torch, no
I/O; used by the spec's recipes and priors, recipes, recipes_phased and the store's weights and recipes)."""

from __future__ import annotations

import math

from lldmix_core.errors import UserError

SUM_TOLERANCE = 1e-6  # |Σ weights − 1| allowed on the fraction scale (mixture files in percent: of the total)


def check_weights(weights: dict[str, float], what: str = "recipe") -> None:
    """Raise UserError (one line, naming `what` and the domain) unless the weights are finite, ≥ 0, sum to 1."""
    if not weights:
        raise UserError(f"{what}: no domains")
    for d, w in weights.items():
        if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise UserError(f"{what}: weight of {d!r} must be finite and ≥ 0, got {w}")
    total = sum(weights.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise UserError(f"{what}: weights sum to {total:.6f}, not 1 (not on the simplex)")
