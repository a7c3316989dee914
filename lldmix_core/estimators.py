"""The mixture estimators the recovery benchmark compares: the paper's aggregated-LLD and its
future-work variants, each a pure function of one pass 1 (no training: "shadow" estimates on the
paper's pass-1 trajectory). A plain-dict registry, name → Estimator; adding one is one entry.

Pass 1 is what iterative-LLD stores at its schedule steps t_1 < … < t_S < T: Δ_t [S, K] (nats/token
or nats/byte), and under lld.record_gram the domain Gram G_t [S, K, K]. The calibrated estimator
also needs the target's and a uniform-trained reference target's per-domain log-likelihoods [K].
Every estimator returns weights [K] on the simplex. Pure: numpy and mathcore only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from lldmix_core import mathcore as mc


@dataclass(frozen=True)
class Pass1:
    steps: np.ndarray  # [S] schedule steps (strictly increasing, < total_steps)
    total_steps: int
    delta: np.ndarray  # [S, K] Δ_t = ℓ_target − ℓ_base,t
    tau: float  # pass 1's τ (the paper's constant; variants with their own τ ignore it)
    prior: np.ndarray  # [K]
    gram: np.ndarray | None = None  # [S, K, K] G_t (None: adjusted variants are not computable)
    l_target: np.ndarray | None = None  # [K] target's ℓ per domain on the evaluation corpus
    l_reference: np.ndarray | None = None  # [K] a uniform-trained reference target's ℓ (same budget)

    def weights(self, taus=None) -> np.ndarray:
        """[S, K] softmax(Δ_t/τ_t)·prior at every step (τ_t = pass 1's τ unless `taus` [S] is given)."""
        taus = np.full(len(self.steps), self.tau) if taus is None else np.asarray(taus, dtype=np.float64)
        return np.array([mc.lld_weights(d, float(t), self.prior) for d, t in zip(self.delta, taus)])


@dataclass(frozen=True)
class Estimator:
    name: str
    family: str  # "paper", "aggregation", "temperature", "adjusted", "calibrated", "phases"
    description: str
    fn: Callable[[Pass1], np.ndarray]
    needs: tuple[str, ...] = ()  # Pass1 fields that must be present ("gram", "l_reference")
    paper: bool = False  # the paper's own estimator (the reference row of every comparison)
    # a phased estimator: the recipe it trains with, [(until fraction, weights [K]), …] (`fn` is its
    # single mixture for the recovery ratio); None for a fixed recipe
    phases: Callable[[Pass1], list[tuple[float, np.ndarray]]] | None = None

    @property
    def privileged(self) -> str | None:
        """What the estimator needs that a user with a real target lacks (None: nothing): such a row is a
        reference in every table and is never named "best"."""
        if "l_reference" in self.needs:
            return "a twin of the target trained on uniform weights with the target's budget"
        return None

    def available(self, p: Pass1) -> bool:
        return all(getattr(p, n) is not None for n in self.needs)


def _paper(p: Pass1) -> np.ndarray:
    return mc.aggregate_geometric(p.weights())


def _auto_tau(measure: str):
    def fn(p: Pass1) -> np.ndarray:
        return mc.aggregate_geometric(p.weights([mc.tau_from_spread(d, measure) for d in p.delta]))
    return fn


def _anneal(p: Pass1) -> np.ndarray:
    return mc.aggregate_geometric(p.weights(mc.annealed_taus(p.steps, 4.0 * p.tau, 0.25 * p.tau)))


def _adjusted(normalisation: str | None, ridge, auto_tau: bool):
    """Per step: adjusted scores from G_t and Δ_t, softmax at τ (pass 1's, or the spread of the
    adjusted scores), then the geometric mean. normalisation None = the paper's raw solve
    (G + ridge·I)⁻¹Δ as adjusted-LLD runs it."""
    def fn(p: Pass1) -> np.ndarray:
        W = []
        for d, G in zip(p.delta, p.gram):
            if normalisation is None:
                W.append(mc.adjusted_weights(d, G, p.tau, p.prior, ridge=float(ridge)))
                continue
            scores = mc.conditioned_gram_solve(G, d, normalisation, ridge).scores
            tau = mc.tau_from_spread(scores, "range") if auto_tau else p.tau
            W.append(mc.lld_weights(scores, tau, p.prior))
        return mc.aggregate_geometric(np.array(W))
    return fn


def conditioning(p: Pass1, normalisation: str, ridge) -> dict[str, float]:
    """What an adjusted variant's solves used, median over pass 1's steps: the ridge λ and the
    condition numbers (2-norm) of the normalised Gram with and without it."""
    solves = [mc.conditioned_gram_solve(G, d, normalisation, ridge) for d, G in zip(p.delta, p.gram)]
    return {"ridge": float(np.median([s.ridge for s in solves])),
            "condition_number": float(np.median([s.condition_number for s in solves])),
            "condition_number_unridged": float(np.median([s.condition_number_unridged for s in solves]))}


# the conditioned solve behind each adjusted variant (the paper's is trace-normalised with λ = 1e-3)
CONDITIONING = {"adjusted": ("trace", 1e-3), "adj-gcv": ("trace", "gcv"), "adj-maxeig": ("trace", "max-eig"),
                "adj-diag": ("diagonal", "gcv")}


def _calibrated(auto_tau: bool):
    def fn(p: Pass1) -> np.ndarray:
        d = mc.calibrated_delta(p.l_target, p.l_reference)
        return mc.lld_weights(d, mc.tau_from_spread(d, "range") if auto_tau else p.tau, p.prior)
    return fn


def _two_stage_phases(p: Pass1) -> list[tuple[float, np.ndarray]]:
    """The two phases' recipes, split at the JS block boundary of the per-step weights (appendix C.2)."""
    return mc.two_stage_phases(p.weights(), p.steps, p.total_steps)


def _two_stage(p: Pass1) -> np.ndarray:
    """The two phases' recipes combined as the phase-length-weighted geometric mean: one mixture to
    compare with the truth (pass 2 trains with the phases themselves)."""
    (until, early), (_, late) = _two_stage_phases(p)
    return mc.aggregate_weighted_geometric(np.array([early, late]), np.array([until, 1.0 - until]))


ESTIMATORS: dict[str, Estimator] = {e.name: e for e in [
    Estimator("paper", "paper", "geometric mean of softmax(Δ_t/τ) over all schedule steps (aggregated-LLD)",
              _paper, paper=True),
    Estimator("arithmetic", "aggregation", "arithmetic mean over all steps (appendix C.1)",
              lambda p: mc.aggregate_arithmetic(p.weights())),
    Estimator("progress", "aggregation", "geometric mean weighted by training progress t/T",
              lambda p: mc.aggregate_weighted_geometric(p.weights(), mc.progress_step_weights(p.steps, p.total_steps))),
    Estimator("tokens", "aggregation", "geometric mean weighted by each step's share of training tokens",
              lambda p: mc.aggregate_weighted_geometric(p.weights(), mc.token_share_step_weights(p.steps, p.total_steps))),
    Estimator("late50", "aggregation", "geometric mean of the steps in the second half of the run",
              lambda p: mc.aggregate_late(p.weights(), p.steps, p.total_steps, 0.5)),
    Estimator("last", "aggregation", "the last schedule step's weights alone (iterative-LLD's final mixture)",
              lambda p: p.weights()[-1]),
    Estimator("auto-range", "temperature", "τ_t = range of Δ_t at each step, geometric mean", _auto_tau("range")),
    Estimator("auto-std", "temperature", "τ_t = standard deviation of Δ_t at each step, geometric mean", _auto_tau("std")),
    Estimator("anneal", "temperature", "τ annealed 4τ → τ/4 (geometric in steps), geometric mean", _anneal),
    Estimator("adjusted", "adjusted", "the paper's adjusted-LLD: (G_t + 1e-3·I)⁻¹Δ_t at τ, geometric mean",
              _adjusted(None, 1e-3, False), needs=("gram",)),
    Estimator("adj-gcv", "adjusted", "trace-normalised G_t, GCV ridge, τ from the adjusted scores' range",
              _adjusted("trace", "gcv", True), needs=("gram",)),
    Estimator("adj-maxeig", "adjusted", "trace-normalised G_t, ridge 0.01·λ_max, τ from the adjusted scores' range",
              _adjusted("trace", "max-eig", True), needs=("gram",)),
    Estimator("adj-diag", "adjusted", "diagonal-normalised G_t, GCV ridge, τ from the adjusted scores' range",
              _adjusted("diagonal", "gcv", True), needs=("gram",)),
    Estimator("calibrated", "calibrated", "softmax((ℓ_target − ℓ_reference)/τ), reference trained on uniform",
              _calibrated(False), needs=("l_target", "l_reference")),
    Estimator("calibrated-auto", "calibrated", "calibrated Δ with τ = its range",
              _calibrated(True), needs=("l_target", "l_reference")),
    Estimator("two-stage", "phases", "early/late recipes split at the JS block boundary, phase-length-weighted",
              _two_stage, phases=_two_stage_phases),
]}

PAPER = next(n for n, e in ESTIMATORS.items() if e.paper)
# lld.aggregation names a registry entry; `geometric` is the paper's entry under the name specs have used
# since the first one (their default): kept as written, so spec hashes, run keys and recipe names stay
AGGREGATION_ALIASES = {"geometric": PAPER}
# the estimators whose recipe changes in phases during the run (two-stage): a run trained on one is phased
PHASED_ESTIMATORS = frozenset(n for n, e in ESTIMATORS.items() if e.phases is not None)


def aggregation_estimator(name: str) -> Estimator:
    """The registry entry an `lld.aggregation` names (`geometric` is `paper`); KeyError for an unknown name."""
    return ESTIMATORS[AGGREGATION_ALIASES.get(name, name)]


def aggregation_names() -> tuple[str, ...]:
    """The names a spec may give lld.aggregation: the aliases, then every registry entry that needs nothing
    a spec lacks (the calibrated ones need a reference target, which only the recovery benchmark has)."""
    return tuple(AGGREGATION_ALIASES) + tuple(n for n, e in ESTIMATORS.items() if "l_reference" not in e.needs)


def estimate_all(p: Pass1) -> dict[str, np.ndarray]:
    """Every available estimator's weights [K] for one pass 1 (unavailable ones are left out)."""
    return {n: e.fn(p) for n, e in ESTIMATORS.items() if e.available(p)}
