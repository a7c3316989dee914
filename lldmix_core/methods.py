"""What each training method *is*: one registry, read by the spec, the plan, the engine, the report
and the dashboard (torchtitan's plain-dict style). Adding a method = one entry here + its behaviour
where the entry's fields send it. Nothing outside this module compares method-name strings.

Floor 1: imports nothing of ours, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# How a method chooses the training mixture:
#   "prior"     the LLD prior (uniform unless lld.prior) for the whole run
#   "recipe"    the spec's lld.recipe for the whole run
#   "aggregate" the recipe aggregated from its pass 1 (`aggregates`) for the whole run
#   "lld"       re-weighted at schedule steps: softmax(Δ/τ) + prior   (iterative-LLD)
#   "adjusted"  re-weighted at schedule steps: softmax(G⁻¹Δ/τ) + prior (adjusted-LLD)
#   "truth"     the target's own training mixture for the whole run (the oracle: a reference that needs
#               what a user with a real target does not have)
Mixture = Literal["prior", "recipe", "aggregate", "lld", "adjusted", "truth"]
# Which stored weights stand for the run on the dashboard: the first (a fixed mixture is the same at
# every step) or the last estimate (a re-weighted run's final mixture).
Shows = Literal["first", "last"]


@dataclass(frozen=True)
class MethodDef:
    name: str
    label: str  # for tables and legends
    mixture: Mixture
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
        return self.mixture in ("lld", "adjusted")

    @property
    def needs_teacher(self) -> bool:
        return self.distill_objective is not None


def _distill(name: str, objective: str, order: int, color: str) -> MethodDef:
    return MethodDef(name, name, "prior", order, order, color, distill_objective=objective)


METHODS: dict[str, MethodDef] = {m.name: m for m in [
    MethodDef("uniform", "uniform", "prior", 0, 0, "#7f7f7f"),
    MethodDef("fixed", "fixed recipe", "recipe", 1, 1, "#bcbd22"),
    MethodDef("iterative-lld", "iterative-LLD", "lld", 2, 2, "#1f77b4", uses_tau=True, shows="last"),
    MethodDef("adjusted-lld", "adjusted-LLD", "adjusted", 3, 4, "#9467bd", uses_tau=True, shows="last"),
    MethodDef("aggregated-lld", "aggregated-LLD", "aggregate", 4, 3, "#d62728", uses_tau=True,
              aggregates="iterative-lld"),
    MethodDef("oracle", "oracle (reference)", "truth", 5, 9, "#000080",
              privileged="the target's true training mixture"),
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


def tau_text(tau_setting) -> str | None:
    """A normalised τ setting (float, "auto", math.inf or None) as the database and MLflow store it:
    "auto", "inf", the float's text ("1.0"), or None where the method has no τ (never the text "None")."""
    if tau_setting is None:
        return None
    return str(tau_setting)


def _only(kind: Mixture) -> str:
    (name,) = [n for n, m in METHODS.items() if m.mixture == kind and not m.needs_teacher]
    return name


def baseline_method() -> str:
    """The method every other is paired with: training on the prior mixture (uniform)."""
    return _only("prior")


def oracle_method() -> str:
    """The method that trains on the target's true mixture (a reference)."""
    return _only("truth")


def reference_note(name: str) -> str:
    """" (reference: needs …)" for a privileged method, "" otherwise: appended wherever a method is named
    in a table, so a result that needs what a user lacks is never read as a recommendation."""
    m = METHODS.get(name)
    return f" (reference: needs {m.privileged})" if m is not None and m.privileged else ""


def color_of(name: str) -> str:
    return METHODS[name].color if name in METHODS else "#aaaaaa"
