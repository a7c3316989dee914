"""Intended vs realized domain weights of a run (torch-free: the report, `lldmix results` and the app read it).

The trainer draws ONE domain per step and trains a whole batch (batch_size × grad_accum × block_size
tokens) from it, so the share of tokens a domain gets over a run is a count of draws, not the recipe's
weight. The engine stores the drawn domain of every step (`train_domain_index`, an index into the run's
sorted domains) with the step's loss, and at the last step the totals it derives from that stored
history: `realized_tokens/<domain>` (tokens) and, for a phased recipe, `realized_tokens/phase<i>/<domain>`
— so a resumed run counts the steps it trained before it was stopped too.

The intended share is the step-weighted average of the stored weights in force (iterative methods change
them at schedule steps); the distance between the two is the total variation, a share of tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core.repetition import repetition_warning

DOMAIN_KEY = "train_domain_index"  # per step: index of the drawn domain in the run's sorted domains
TOKENS_PREFIX = "realized_tokens/"
UNIQUE_PREFIX = "unique_tokens/"  # at the last step: the domain's unique training tokens (for epochs)


@dataclass(frozen=True)
class PhaseRealized:
    first_step: int
    end_step: int  # exclusive
    intended: np.ndarray  # [K] the phase's weights
    tokens: np.ndarray  # [K] tokens trained per domain in the phase

    @property
    def realized(self) -> np.ndarray:
        return self.tokens / self.tokens.sum()


@dataclass(frozen=True)
class RealizedMix:
    """One run's mixture as trained: shares over `domains` (sorted), tokens per domain, TV (share of tokens)."""

    run_id: int
    domains: tuple[str, ...]
    total_steps: int
    intended: np.ndarray  # [K] expected token share: weights in force averaged over the steps
    tokens: np.ndarray  # [K] tokens trained per domain
    phases: list[PhaseRealized] = field(default_factory=list)
    unique_tokens: np.ndarray | None = None  # [K] unique training tokens per domain (None: not stored)

    @property
    def realized(self) -> np.ndarray:
        return self.tokens / self.tokens.sum()

    @property
    def epochs(self) -> np.ndarray | None:
        """[K] epochs trained per domain: realized tokens / unique tokens (None when unique tokens are unknown)."""
        return None if self.unique_tokens is None else mc.implied_epochs(self.realized, self.tokens.sum(), self.unique_tokens)

    @property
    def tv(self) -> float:
        return mc.total_variation(self.intended, self.realized)


def totals_from_history(domain_index_by_step: dict[int, float], total_steps: int, n_domains: int,
                        tokens_per_step: int, phase_starts: list[int]) -> dict[str, np.ndarray] | None:
    """{"all": tokens [K], "phase<i>": tokens [K] …} from the stored per-step domain draws; None when a
    step of 0..total_steps−1 has no stored draw (a history with a gap is not counted)."""
    if any(s not in domain_index_by_step for s in range(total_steps)):
        return None
    draws = np.array([int(domain_index_by_step[s]) for s in range(total_steps)])
    out = {"all": mc.realized_tokens(draws, n_domains, tokens_per_step)}
    starts = sorted(set(phase_starts) | {0})
    if len(starts) > 1:
        for i, (a, b) in enumerate(zip(starts, starts[1:] + [total_steps])):
            out[f"phase{i}"] = mc.realized_tokens(draws[a:b], n_domains, tokens_per_step)
    return out


def totals_as_metrics(totals: dict[str, np.ndarray], domains) -> dict[str, float]:
    """The run_metrics rows (and MLflow metrics) that hold the totals, tokens."""
    out = {}
    for part, tokens in totals.items():
        prefix = TOKENS_PREFIX if part == "all" else f"{TOKENS_PREFIX}{part}/"
        out.update({f"{prefix}{d}": float(t) for d, t in zip(domains, tokens)})
    return out


def realized_of(store, run_id: int) -> RealizedMix | None:
    """The run's intended and realized shares from the store, or None when it stored no totals (a run
    made before they were recorded, or one still training)."""
    metrics = store.get_metrics(run_id)
    rows = [m for m in metrics if m["key"].startswith(TOKENS_PREFIX)]
    unique = {m["key"][len(UNIQUE_PREFIX):]: m["value"] for m in metrics if m["key"].startswith(UNIQUE_PREFIX)}
    if not rows:
        return None
    total_steps = max(m["step"] for m in rows)
    whole = {m["key"][len(TOKENS_PREFIX):]: m["value"] for m in rows if m["key"].count("/") == 1}
    domains = tuple(sorted(whole))
    weights = store.get_weights(run_id)
    if not weights or any(set(w) != set(domains) for w in weights.values()):
        return None
    by_step = {s: np.array([w[d] for d in domains]) for s, w in weights.items()}
    intended = mc.intended_token_shares(by_step, total_steps)
    phases = []
    n_phases = len({m["key"].split("/")[1] for m in rows if m["key"].count("/") == 2})
    if n_phases:
        starts = sorted(s for s in by_step if s < total_steps)
        # a phased run stores weights where each phase starts (and at evaluation steps between, unchanged)
        changes = [s for i, s in enumerate(starts) if i == 0 or not np.array_equal(by_step[s], by_step[starts[i - 1]])]
        if len(changes) == n_phases:
            ends = changes[1:] + [total_steps]
            for i, (a, b) in enumerate(zip(changes, ends)):
                t = np.array([next(m["value"] for m in rows if m["key"] == f"{TOKENS_PREFIX}phase{i}/{d}") for d in domains])
                phases.append(PhaseRealized(a, b, by_step[a], t))
    return RealizedMix(run_id, domains, total_steps, intended, np.array([whole[d] for d in domains]), phases,
                       np.array([unique[d] for d in domains]) if set(unique) >= set(domains) else None)


def format_realized(label: str, mix: RealizedMix) -> list[str]:
    """Plain-text lines for the end-of-run report: the TV (% of tokens), the tokens trained, the domain
    farthest from its intended share and, for a phased recipe, each phase's TV."""
    lines = [f"  {label:<26} TV {100 * mix.tv:5.1f} % of {mix.tokens.sum():,.0f} tokens; largest gap {largest_gap(mix)}"]
    if mix.unique_tokens is not None:
        warning = repetition_warning(dict(zip(mix.domains, map(float, mix.realized))), float(mix.tokens.sum()),
                                     dict(zip(mix.domains, map(int, mix.unique_tokens))))
        if warning:
            lines.append(f"    {warning.replace('this recipe repeats', 'this run repeated')}")
    for n, p in enumerate(mix.phases):
        lines.append(f"    phase {n} (steps {p.first_step}–{p.end_step - 1}): TV "
                     f"{100 * mc.total_variation(p.intended, p.realized):.1f} % of its {p.tokens.sum():,.0f} tokens")
    return lines


def realized_rows(store, runs) -> list[tuple[object, RealizedMix]]:
    """(run outcome, its RealizedMix) for each of `runs` (anything with run_id) that stored realized totals."""
    out = []
    for r in runs:
        mix = realized_of(store, r.run_id)
        if mix is not None:
            out.append((r, mix))
    return out


def largest_gap(mix: RealizedMix) -> str:
    """The domain whose realized share is farthest from its intended one, as 'Domain 12.5 % → 20.0 %'."""
    k = int(np.argmax(np.abs(mix.realized - mix.intended)))
    return f"{mix.domains[k]} {100 * mix.intended[k]:.1f} % → {100 * mix.realized[k]:.1f} %"


def realized_markdown(rows: list[tuple[object, RealizedMix]]) -> list[str]:
    """`lldmix results`' section: per run the TV between intended and realized token shares."""
    if not rows:
        return []
    table = ["| method | seed | TV (% of tokens) | tokens trained | largest gap (intended → realized share) |",
             "|---|---|---|---|---|"]
    for r, mix in rows:
        table.append(f"| {r.method} | {r.seed} | {100 * mix.tv:.1f} | {mix.tokens.sum():,.0f} | {largest_gap(mix)} |")
    return ["## Intended vs realized weights", "",
            "The trainer draws one domain per step and trains the whole batch on it, so the share of tokens each "
            "domain got is a count of draws. Intended = the weights in force averaged over the steps; TV = ½ Σ |intended "
            "− realized| over domains, as a share of the run's tokens.", "", *table, ""]
