"""The behaviour interface and what the engine hands it (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np


@dataclass(frozen=True)
class MixtureInputs:
    """What a behaviour may read to choose one run's mixture. Weights are [K] in `domains` order."""

    spec: Any  # the RunSpec (duck-typed: behaviours import nothing of the spec layer)
    domains: tuple[str, ...]
    prior: np.ndarray  # [K] the LLD prior (uniform unless lld.prior)
    truth: np.ndarray | None  # [K] the target's training mixture, when lldmix trained the target
    seed: int
    tau_setting: Any  # the run's τ setting (tau.Tau; NO_TAU where the method has none)
    method: str  # the registry name of the method this run trains (recipes are named by it)
    # {domain: weight} → [K] on the simplex, unknown domains refused naming the field (prepare.mixture)
    as_weights: Callable[[dict, str], np.ndarray] | None = None
    # builds (or finds) and stores this seed's aggregated recipe at `tau_setting`: (weights [K], resolved τ)
    aggregate: Callable[[], tuple[np.ndarray, float | None]] | None = None
    # this run's stored recipe's phases ([{until, weights}]) once `aggregate` has stored it
    stored_phases: Callable[[], list[dict]] | None = None


class Reweighted(NamedTuple):
    weights: np.ndarray  # [K] the mixture from this schedule step on
    gram: np.ndarray | None  # [K, K] the Gram matrix the estimate used (None: it used none)


class Behaviour:
    """A kind of mixture choice. Defaults: a fixed mixture (the prior), no phases, no re-weighting."""

    kind = "prior"  # the kind's name, for documents (never compared outside the registry)
    iterative = False  # re-weights at the LLD schedule steps
    uses_gram = False  # its re-weighting solves the domain Gram matrix (computed at each schedule step)
    makes_recipe = False  # trains a recipe it stored under inp.method's recipe name (logged with the run)
    fixed_recipe = False  # trains one recipe chosen before the run (its recovery of a known truth is reported)

    def initial(self, inp: MixtureInputs) -> tuple[np.ndarray, float | None]:
        """The mixture at step 0 (a fixed method's for the whole run) and its τ where known."""
        return inp.prior, None

    def phases(self, inp: MixtureInputs) -> list[tuple[float, dict, str]]:
        """A phased recipe as [(until: fraction of the run or a step, {domain: weight}, where it came from)]."""
        return []

    def phased(self, spec, phased_estimators: frozenset[str]) -> bool:
        """Does a run of this kind in `spec` change its mixture in phases (`phased_estimators`: the
        aggregation estimators that return phases)?"""
        return False

    def reweight(self, delta: np.ndarray, tau: float, prior: np.ndarray, current: np.ndarray,
                 gram: Callable[[], np.ndarray], ridge: float) -> Reweighted:
        """The weights from this schedule step on, from Δ = ℓ_target − ℓ_model per domain [K]."""
        raise NotImplementedError(f"a {self.kind} method does not re-weight during training")

    def spec_problem(self, method: str, spec) -> str | None:
        """Why `spec` cannot run `method` (one line), or None."""
        return None
