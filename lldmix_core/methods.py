"""What each training method *is*: one registry, read by the spec, the plan, the engine, the report
and the dashboard (torchtitan's plain-dict style). Adding a method = one entry here, with a behaviour
(lldmix_core/behaviours/: how it chooses its mixture) of an existing kind or a new module there.
Nothing outside this module compares method or kind names.

Floor 1: imports only the pure behaviours and the τ type (numpy, mathcore), no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lldmix_core.behaviours import Adjusted, Aggregate, Behaviour, EmaIterative, Iterative, Prior, Recipe, Truth
from lldmix_core.tau import Tau, tau_of_cell

# How a method chooses the training mixture (one behaviour object per kind, lldmix_core/behaviours/):
#   Prior      the LLD prior (uniform unless lld.prior) for the whole run
#   Recipe     the spec's lld.recipe (or lld.phases) for the whole run
#   Aggregate  the recipe aggregated from its pass 1 (`aggregates`) for the whole run
#   Iterative  re-weighted at schedule steps: softmax(Δ/τ) + prior   (iterative-LLD)
#   Adjusted   re-weighted at schedule steps: softmax(G⁻¹Δ/τ) + prior (adjusted-LLD)
#   EmaIterative  re-weighted at schedule steps by an exponential moving average of iterative-LLD's weights
#   Truth      the target's own training mixture for the whole run (the oracle: a reference that needs
#              what a user with a real target does not have)
PRIOR, RECIPE, AGGREGATE, ITERATIVE, ADJUSTED, TRUTH = Prior(), Recipe(), Aggregate(), Iterative(), Adjusted(), Truth()
# Which stored weights stand for the run on the dashboard: the first (a fixed mixture is the same at
# every step) or the last estimate (a re-weighted run's final mixture).
Shows = Literal["first", "last"]


@dataclass(frozen=True)
class MethodDef:
    name: str
    label: str  # for tables and legends
    behaviour: Behaviour  # how it chooses its mixture
    order: int  # execution order for the runs of one seed: pass 1 before pass 2, recipes before users
    table_order: int  # row order in tables, legends and the dashboard
    color: str  # one fixed colour per method on every page and every chart
    uses_tau: bool = False
    aggregates: str | None = None  # the pass-1 method whose per-step weights this method's recipe aggregates
    distill_objective: str | None = None  # set: the target is a teacher and this is the loss (objectives.py)
    shows: Shows = "first"
    # set: the method needs information a user with a real target lacks (said in every table, chart and
    # the CLI, and such a method is never called "best"): what it needs
    privileged: str | None = None

    @property
    def iterative(self) -> bool:
        """Re-weights during training at the LLD schedule steps."""
        return self.behaviour.iterative

    @property
    def kind(self) -> str:
        return self.behaviour.kind

    @property
    def needs_teacher(self) -> bool:
        return self.distill_objective is not None


def _distill(name: str, objective: str, order: int, color: str) -> MethodDef:
    return MethodDef(name, name, PRIOR, order, order, color, distill_objective=objective)


METHODS: dict[str, MethodDef] = {m.name: m for m in [
    MethodDef("uniform", "uniform", PRIOR, 0, 0, "#7f7f7f"),
    MethodDef("fixed", "fixed recipe", RECIPE, 1, 1, "#bcbd22"),
    MethodDef("iterative-lld", "iterative-LLD", ITERATIVE, 2, 2, "#1f77b4", uses_tau=True, shows="last"),
    MethodDef("adjusted-lld", "adjusted-LLD", ADJUSTED, 3, 4, "#9467bd", uses_tau=True, shows="last"),
    MethodDef("aggregated-lld", "aggregated-LLD", AGGREGATE, 4, 3, "#d62728", uses_tau=True,
              aggregates="iterative-lld"),
    MethodDef("oracle", "oracle (reference)", TRUTH, 5, 9, "#000080",
              privileged="the target's true training mixture"),
    MethodDef("ema-lld", "EMA-LLD (β = 0.5)", EmaIterative(beta=0.5), 6, 5, "#17a589", uses_tau=True, shows="last"),
    _distill("distill-kl", "kl", 10, "#2ca02c"),
    _distill("distill-kl+ce", "kl+ce", 11, "#98df8a"),
    _distill("distill-reverse-kl", "reverse-kl", 12, "#17becf"),
    _distill("distill-amid", "amid", 13, "#8c564b"),
    _distill("distill-ttm", "ttm", 14, "#e377c2"),
    _distill("distill-wttm", "wttm", 15, "#ff7f0e"),
]}

TARGET_COLOR = "#000000"  # the target on the model map and in legends


def method(name: str) -> MethodDef:
    """The registry entry for `name` (KeyError names the unknown method)."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None


def ordered(names) -> list[str]:
    """`names` in the registry's display order (unknown names last, alphabetically)."""
    return sorted(names, key=lambda n: (METHODS[n].table_order if n in METHODS else 1_000, n))


def with_tau() -> tuple[str, ...]:
    """The methods that have a temperature τ."""
    return tuple(n for n, m in METHODS.items() if m.uses_tau)


def _only(behaviour: Behaviour) -> str:
    (name,) = [n for n, m in METHODS.items() if m.behaviour is behaviour and not m.needs_teacher]
    return name


def baseline_method() -> str:
    """The method every other is paired with: training on the prior mixture (uniform)."""
    return _only(PRIOR)


def oracle_method() -> str:
    """The method that trains on the target's true mixture (a reference)."""
    return _only(TRUTH)


def recipe_method() -> str:
    """The method that trains the spec's own lld.recipe (or lld.phases)."""
    return _only(RECIPE)


def pass1_methods() -> frozenset[str]:
    """The methods whose runs another method's recipe aggregates (their stored Δ_t feed the estimators)."""
    return frozenset(m.aggregates for m in METHODS.values() if m.aggregates)


PARENT_ROW = "spec"  # runs.method of a spec's parent row (its runs are its children)


def is_parent_row(method: str) -> bool:
    """Is a `runs` row with this method a spec's parent row, not a trained run?"""
    return method == PARENT_ROW


def reference_note(name: str) -> str:
    """" (reference: needs …)" for a privileged method, "" otherwise: appended wherever a method is named
    in a table, so a result that needs what a user lacks is never read as a recommendation."""
    m = METHODS.get(name)
    return f" (reference: needs {m.privileged})" if m is not None and m.privileged else ""


def run_label(method: str, tau_setting: Tau | str | None, several_taus: bool) -> str:
    """How a run is named in tables and legends: "aggregated-lld τ=0.1" where a spec has several τ
    settings and the method has one, else the method's name. `tau_setting`: a Tau, or its stored text
    (runs.tau_setting; None, or a table's empty cell NaN, for none)."""
    t = tau_of_cell(tau_setting)
    return f"{method} τ={t.text}" if several_taus and not t.is_none else method


def color_of(name: str) -> str:
    return METHODS[name].color if name in METHODS else "#aaaaaa"
