"""A one-shot recipe from two existing checkpoints: score base and target on a stored evaluation corpus
(reusing stored vectors), Δ_k = ℓ_target,k − ℓ_base,k per domain, recipe = softmax(Δ/τ)·prior.

The recipe goes to the database (with its provenance: both fingerprints, the corpus hash, τ as set and
resolved, the unit, ℓ and Δ per domain, the commit) and to MLflow (one run in the experiment
`lldmix-recipes`). A second call with the same inputs finds both vectors and the recipe stored: it
loads no model, runs no forward pass and logs nothing new.

Floor 5 (beside the engine): store, tracker, mathcore; `evaluate` (torch) only when a model must be
scored, so the dashboard computes recipes from stored vectors without importing torch
(`score_missing=False`: a model without stored scores is then a one-line error naming the command).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core import provenance
from lldmix_core.db.store import Store
from lldmix_core.domain_manifest import PROVENANCE_KEY, of_texts
from lldmix_core.errors import UserError
from lldmix_core.tau import Tau
from lldmix_core.tracking import NullTracker

METHOD = "from-models"
EXPERIMENT = "lldmix-recipes"
UNITS = {"token": "nats/token", "byte": "nats/byte"}


def parse_tau(text: str) -> Tau:
    """τ as given on the command line: a number > 0, "auto" (the spread of Δ) or "inf" (the prior)."""
    try:
        t = Tau.of(str(text))
    except ValueError:
        raise UserError(f"--tau {text!r}: give a number > 0, 'auto' or 'inf'") from None
    if t.is_none:
        raise UserError(f"--tau {text!r}: τ must be > 0 (or 'auto'; 'inf' gives the prior)")
    return t


@dataclass(frozen=True)
class OneShotRecipe:
    name: str
    recipe_id: int
    domains: tuple[str, ...]
    unit: str
    base_ll: np.ndarray  # ℓ_base per domain, in `unit`
    target_ll: np.ndarray
    delta: np.ndarray  # ℓ_target − ℓ_base
    tau: float  # resolved
    tau_setting: str  # tau.Tau.text
    weights: np.ndarray
    scored: dict[str, bool] = field(default_factory=dict)  # "base"/"target" → True when a forward pass ran
    stored_new: bool = True  # False: the same recipe was already stored (nothing written, nothing logged)
    mlflow_run_id: str | None = None


def default_name(base: str, target: str, unit: str, tau_setting: str) -> str:
    return f"{base}-to-{target}.{unit}.tau{tau_setting}"


def _vector(store: Store, checkpoints_dir: Path, model_id: int, corpus, texts, batch_tokens: int, score_missing: bool):
    """(loglik, n_tokens, computed): the stored vector when there is one (no model is loaded), else score."""
    info = store.get_model(model_id)
    cached = store.get_loglik_vector(model_id, corpus.id, info.tokenizer_hash)
    if cached is not None:
        ll, nt = cached
        return ll.astype(np.float64), nt.astype(np.int64), False
    if not score_missing:
        raise UserError(f"model {info.name!r} has no stored scores on corpus {corpus.name!r}: run "
                        f"`lldmix score --model {info.name} --corpus {corpus.name}` first")
    from lldmix_core.evaluate import load_stored_model, score_model  # torch: only when scoring

    lm = load_stored_model(store, checkpoints_dir, model_id)
    s = score_model(store, lm, model_id, corpus.id, texts, batch_tokens=batch_tokens)
    return s.loglik, s.n_tokens, s.computed


def recipe_from_models(
    store: Store, base: str, target: str, corpus: str, *, tau: Tau | float | str, unit: str = "token",
    name: str | None = None, checkpoints_dir: Path, tracker: NullTracker | None = None, batch_tokens: int = 8192,
    score_missing: bool = True,
) -> OneShotRecipe:
    if unit not in UNITS:
        raise UserError(f"--unit {unit!r}: token or byte")
    b, t = store.get_model(base), store.get_model(target)
    if b.id == t.id:
        raise UserError(f"base and target are the same model ({b.name}, id {b.id}): Δ would be 0 in every domain")
    if unit == "token" and b.tokenizer_hash != t.tokenizer_hash:
        raise UserError(f"{b.name} and {t.name} have different tokenizers ({b.tokenizer}, {t.tokenizer}): nats/token "
                        "are not comparable across vocabularies; use --unit byte")
    tau = Tau.of(tau)
    setting = tau.text
    name = name or default_name(b.name, t.name, unit, setting)
    _refuse_other_recipe(store, name)
    c = store.get_corpus(corpus)
    texts = store.load_texts(c.id)
    domains = tuple(c.domains)
    out = {}
    for role, info in (("base", b), ("target", t)):
        ll, nt, computed = _vector(store, checkpoints_dir, info.id, c, texts, batch_tokens, score_missing)
        out[role] = (mc.domain_means(ll, nt, texts.n_bytes, texts.domains, domains, unit), computed)
    base_ll, target_ll = out["base"][0], out["target"][0]
    delta = target_ll - base_ll
    tau_resolved = tau.resolve(delta)
    weights = mc.lld_weights(delta, tau_resolved)
    per = lambda v: {d: float(x) for d, x in zip(domains, v)}  # noqa: E731
    prov = {
        "method": METHOD, "base": b.name, "target": t.name,
        "base_fingerprint": b.fingerprint, "target_fingerprint": t.fingerprint,
        "base_tokenizer_hash": b.tokenizer_hash, "target_tokenizer_hash": t.tokenizer_hash,
        "corpus": c.name, "corpus_hash": c.content_hash, "unit": unit, "unit_label": UNITS[unit],
        "tau_setting": setting, "tau": tau_resolved if math.isfinite(tau_resolved) else "inf",
        "prior": "uniform", "base_loglik": per(base_ll), "target_loglik": per(target_ll), "delta": per(delta),
        PROVENANCE_KEY: of_texts(domains, texts.domains, texts.texts),  # versioned domains (domain_manifest.py)
        **{k: v for k, v in provenance.code_version().items()},
    }
    scored = {"base": out["base"][1], "target": out["target"][1]}
    same = _same_recipe(store, name, weights, domains, prov)
    if same is not None:
        return OneShotRecipe(name, same["id"], domains, unit, base_ll, target_ll, delta, tau_resolved, setting, weights,
                             scored, stored_new=False, mlflow_run_id=same["provenance"].get("mlflow_run_id"))
    tracker = tracker or NullTracker()
    run_id = tracker.start_parent(name, {"method": METHOD, "base": b.name, "target": t.name,
                                         "base_fingerprint": b.fingerprint, "target_fingerprint": t.fingerprint,
                                         "corpus_hash": c.content_hash, "unit": unit, "tau_setting": setting,
                                         "tau_resolved": repr(tau_resolved)},
                                  tags={"lldmix.method": METHOD})
    if run_id:
        prov["mlflow_run_id"] = run_id
    recipe_id = store.save_recipe(name=name, method=METHOD, weights=per(weights), provenance=prov)
    try:
        metrics = {**{f"delta/{d}": v for d, v in per(delta).items()},
                   **{f"weight/{d}": v for d, v in per(weights).items()},
                   **{f"base_loglik/{d}": v for d, v in per(base_ll).items()},
                   **{f"target_loglik/{d}": v for d, v in per(target_ll).items()}}
        tracker.log_metrics(run_id, metrics, step=0)
        tracker.log_recipe(run_id, store.get_recipe(recipe_id))
    except BaseException:
        tracker.end(run_id, status="FAILED")
        raise
    tracker.end(run_id)
    return OneShotRecipe(name, recipe_id, domains, unit, base_ll, target_ll, delta, tau_resolved, setting, weights,
                         scored, stored_new=True, mlflow_run_id=run_id)


def _refuse_other_recipe(store: Store, name: str) -> None:
    """A name held by a recipe some other way made (e.g. an aggregated-LLD run's) is never overwritten."""
    try:
        have = store.get_recipe(name)
    except UserError:
        return
    if have["method"] != METHOD:
        raise UserError(f"recipe name {name!r} is taken by recipe {have['id']} (method {have['method']}): choose another --name")


def _same_recipe(store: Store, name: str, weights: np.ndarray, domains, prov: dict) -> dict | None:
    """The stored recipe `name` when it is this very recipe (same inputs, same weights), else None."""
    try:
        have = store.get_recipe(name)
    except UserError:
        return None
    hp = have["provenance"]
    keys = ("method", "base_fingerprint", "target_fingerprint", "corpus_hash", "unit", "tau_setting")  # and the weights
    if have["method"] != METHOD or any(hp.get(k) != prov.get(k) for k in keys):
        return None
    w = have["weights"]
    if set(w) != set(domains) or any(abs(w[d] - float(x)) > 1e-12 for d, x in zip(domains, weights)):
        return None
    return have


def describe(r: OneShotRecipe) -> list[str]:
    """The lines `lldmix recipe from-models` prints: ℓ and Δ per domain (with units) and the recipe."""
    u = UNITS[r.unit]
    lines = [f"  {'domain':<16} {'ℓ base':>11} {'ℓ target':>11} {'Δ':>11} {'weight':>8}   ({u}; Δ = ℓ_target − ℓ_base)"]
    for k, d in enumerate(r.domains):
        lines.append(f"  {d:<16} {r.base_ll[k]:>11.4f} {r.target_ll[k]:>11.4f} {r.delta[k]:>+11.4f} {r.weights[k]:>8.4f}")
    tau = f"{r.tau:.4g}" if math.isfinite(r.tau) else "inf"
    lines.append(f"recipe = softmax(Δ/τ) · uniform prior, τ = {tau} {u}" + (" (auto: the spread of Δ)" if r.tau_setting == "auto" else ""))
    return lines
