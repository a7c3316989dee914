"""Repetition accounting for a recipe: unique training tokens per domain, the epochs a recipe implies at a
token budget, a warning above a threshold, and the `lld.max_epochs` cap (torch-free: the CLI, the engine,
the report and the app use it).

Units: tokens (of the run's tokenizer); epochs = weight × budget / unique tokens of the domain, i.e. how
many times a trainer reads that domain's training stream on average.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core.errors import UserError

EPOCH_WARNING = 4.0  # epochs: above this a domain is repeated enough to warn (the common per-domain cap)


def run_budget_tokens(spec) -> int:
    """The tokens one run of `spec` trains: steps × batch_size × grad_accum × block_size (one domain a step)."""
    t = spec.training
    return int(t.steps * t.batch_size * t.grad_accum * spec.arch.block_size)


def unique_tokens_of_streams(folder) -> dict[str, int]:
    """{domain: unique training tokens} from a token-streams folder's manifest.json (corpus/streams.py)."""
    path = Path(folder) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
        return {d: int(n) for d, n in manifest["n_tokens"].items()}
    except FileNotFoundError:
        raise UserError(f"--tokens-dir {folder}: no manifest.json (give a token-streams folder under "
                        "$LLDMIX_HOME/tokens)") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UserError(f"--tokens-dir {folder}: manifest.json has no n_tokens per domain") from None


def epochs_table(weights: dict[str, float], budget_tokens: float, unique_tokens: dict[str, int]) -> dict[str, float]:
    """{domain: implied epochs} for each domain of `weights`; a domain missing from `unique_tokens` is an error."""
    missing = sorted(d for d, w in weights.items() if w > 0 and d not in unique_tokens)
    if missing:
        raise UserError(f"unique tokens: no training tokens counted for domains {missing}")
    domains = list(weights)
    e = mc.implied_epochs([weights[d] for d in domains], budget_tokens, [unique_tokens.get(d, 0) for d in domains])
    return dict(zip(domains, map(float, e)))


def repetition_warning(weights: dict[str, float], budget_tokens: float, unique_tokens: dict[str, int],
                       threshold: float = EPOCH_WARNING) -> str | None:
    """One line naming every domain the recipe repeats more than `threshold` epochs at the budget, or None."""
    epochs = epochs_table(weights, budget_tokens, unique_tokens)
    over = {d: e for d, e in sorted(epochs.items(), key=lambda x: -x[1]) if e > threshold}
    if not over:
        return None
    return (f"WARNING: at a budget of {budget_tokens:,.0f} tokens this recipe repeats "
            + ", ".join(f"{d} {e:.1f} epochs ({unique_tokens[d]:,} unique tokens)" for d, e in over.items())
            + f" — over {threshold:g} epochs (cap with lld.max_epochs)")


def repetition_provenance(weights: dict[str, float], budget_tokens: float, unique_tokens: dict[str, int],
                          threshold: float = EPOCH_WARNING) -> dict:
    """What an export carries about repetition: the budget, unique tokens and epochs per domain, the warning."""
    epochs = epochs_table(weights, budget_tokens, unique_tokens)
    out = {"budget_tokens": float(budget_tokens), "unique_tokens": {d: int(unique_tokens[d]) for d in weights if d in unique_tokens},
           "epochs": {d: round(e, 4) for d, e in epochs.items()}, "epoch_warning_threshold": threshold}
    warning = repetition_warning(weights, budget_tokens, unique_tokens, threshold)
    if warning:
        out["warning"] = warning
    return out


def cap_recipe(weights: dict[str, float], budget_tokens: float, unique_tokens: dict[str, int],
               max_epochs: float) -> tuple[dict[str, float], dict | None]:
    """(the weights capped at `max_epochs` epochs per domain and renormalised, the renormalisation as a
    provenance dict {max_epochs, budget_tokens, before, after, capped}) — the note is None when no domain
    was over the cap (the weights come back unchanged)."""
    domains = list(weights)
    before = np.array([weights[d] for d in domains], dtype=np.float64)
    unique = [unique_tokens.get(d, 0) for d in domains]
    try:
        after = mc.cap_epochs(before, budget_tokens, unique, max_epochs)
    except ValueError as e:
        raise UserError(f"lld.max_epochs {max_epochs:g}: {e}") from None
    if np.allclose(after, before, rtol=0, atol=1e-12):
        return dict(weights), None
    capped = dict(zip(domains, map(float, after)))
    epochs = mc.implied_epochs(before, budget_tokens, unique)
    note = {"max_epochs": float(max_epochs), "budget_tokens": float(budget_tokens),
            "before": {d: float(w) for d, w in weights.items()}, "after": capped,
            "capped": [d for d, e in zip(domains, epochs) if e > max_epochs * (1 + 1e-12)]}
    return capped, note


def format_cap(note: dict) -> str:
    """The renormalisation as one printed line (weights as %, epochs)."""
    moved = ", ".join(f"{d} {100 * note['before'][d]:.1f} % → {100 * note['after'][d]:.1f} %"
                      for d in note["before"] if abs(note["before"][d] - note["after"][d]) > 5e-4)
    return (f"lld.max_epochs {note['max_epochs']:g} at {note['budget_tokens']:,.0f} tokens capped "
            f"{', '.join(note['capped'])} and renormalised: {moved}")


def epoch_capped(spec, corpus, behaviour, weights: np.ndarray) -> tuple[np.ndarray, dict | None]:
    """A run's step-0 weights [K] under spec.lld.max_epochs: a fixed recipe's (behaviour.fixed_recipe:
    lld.recipe, aggregated-LLD's) capped and renormalised, with the renormalisation note; anything else
    (no cap, the prior, iterative methods) unchanged with None."""
    if spec.lld.max_epochs is None or not behaviour.fixed_recipe:
        return weights, None
    unique = {d: corpus.streams.n_tokens(d) for d in corpus.domains}
    capped, note = cap_recipe(dict(zip(corpus.domains, map(float, weights))), run_budget_tokens(spec), unique,
                              spec.lld.max_epochs)
    return np.array([capped[d] for d in corpus.domains]), note


def with_repetition(recipe: dict, *, budget_tokens: float | None = None, unique_tokens: dict[str, int] | None = None,
                    threshold: float = EPOCH_WARNING, max_epochs: float | None = None) -> tuple[dict, list[str]]:
    """(the recipe with provenance["repetition"] — and under `max_epochs` its weights capped, the
    renormalisation in provenance["epoch_cap"] — , the lines to print). The budget and unique tokens default
    to what the recipe's provenance stored (the engine stores both for aggregated recipes); a recipe with
    neither comes back unchanged. A phased recipe is accounted by its stored (whole-run) weights."""
    prov = dict(recipe.get("provenance") or {})
    budget = budget_tokens if budget_tokens is not None else prov.get("budget_tokens")
    unique = unique_tokens if unique_tokens is not None else prov.get("unique_tokens")
    if budget is None and unique is None and max_epochs is None:
        return recipe, []
    if budget is None:
        raise UserError(f"--budget-tokens: recipe {recipe.get('name')} stores no token budget; give one (tokens)")
    if unique is None:
        raise UserError(f"--tokens-dir: recipe {recipe.get('name')} stores no unique token counts; give the token-streams "
                        "folder of its training corpus")
    if not budget > 0:
        raise UserError(f"--budget-tokens {budget}: must be > 0 tokens")
    weights, lines = dict(recipe["weights"]), []
    if max_epochs is not None:
        weights, note = cap_recipe(weights, budget, unique, max_epochs)
        if note:
            prov["epoch_cap"] = note
            lines.append(format_cap(note))
    prov["repetition"] = repetition_provenance(weights, budget, unique, threshold)
    if "warning" in prov["repetition"]:
        lines.append(prov["repetition"]["warning"])
    return {**recipe, "weights": weights, "provenance": prov}, lines
