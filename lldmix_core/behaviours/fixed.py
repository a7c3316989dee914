"""The kinds whose mixture is fixed before the run: the prior, the spec's recipe, the recipe aggregated
from pass 1, and the target's true mixture (the oracle)."""

from __future__ import annotations

from lldmix_core.behaviours.base import Behaviour, MixtureInputs


class Prior(Behaviour):
    """The LLD prior (uniform unless lld.prior) for the whole run: the baseline."""

    kind = "prior"


class Recipe(Behaviour):
    """The spec's lld.recipe for the whole run, or its lld.phases one after another."""

    kind = "recipe"
    fixed_recipe = True

    def initial(self, inp: MixtureInputs):
        lld = inp.spec.lld  # (a phased recipe's first phase; the engine applies the later ones)
        return inp.as_weights(lld.recipe if lld.recipe is not None else lld.phases[0].weights, "lld.recipe"), None

    def phases(self, inp: MixtureInputs):
        return [(p.until, p.weights, f"lld.phases[{i}].weights") for i, p in enumerate(inp.spec.lld.phases or [])]

    def phased(self, spec, phased_estimators):
        return bool(spec.lld.phases)

    def spec_problem(self, method, spec):
        if not spec.lld.recipe and not spec.lld.phases:
            return f"method `{method}` needs lld.recipe (or lld.phases)"
        return None


class Aggregate(Behaviour):
    """The recipe aggregated from this seed's pass 1 (lld.aggregation: an estimator of the registry, the
    default `geometric` being the paper's geometric mean; possibly phased), stored under the method's recipe name."""

    kind = "aggregate"
    makes_recipe = True
    fixed_recipe = True

    def initial(self, inp: MixtureInputs):
        return inp.aggregate()

    def phases(self, inp: MixtureInputs):
        if inp.tau_setting.is_inf:
            return []  # τ = ∞: the prior, no pass 1 and no phases
        return [(p["until"], p["weights"], f"recipe of {inp.method}: phases[{i}]")
                for i, p in enumerate(inp.stored_phases() or [])]

    def phased(self, spec, phased_estimators):
        return spec.lld.aggregation in phased_estimators


class Truth(Behaviour):
    """The target's own training mixture for the whole run (the oracle: a reference that needs what a user
    with a real target does not have)."""

    kind = "truth"

    def initial(self, inp: MixtureInputs):
        return inp.truth, None  # the exact array the target trained on

    def spec_problem(self, method, spec):
        if spec.target.train is None:
            return (f"method `{method}` trains on the target's true mixture, which lldmix knows only for a "
                    "target it trains (target.train); this target is loaded, its mixture unknown")
        return None
