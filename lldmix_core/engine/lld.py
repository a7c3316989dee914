"""The LLD-specific stages of the engine: the domain Gram matrix (adjusted-LLD), the aggregated-LLD
recipe from pass 1's stored Δ_t through the estimator registry (or the prior at τ = ∞), and the first
pass's estimation subsample."""

from __future__ import annotations

import math

import numpy as np
import torch

from lldmix_core.db.store import Store
from lldmix_core.domain_manifest import PROVENANCE_KEY, of_texts
from lldmix_core.errors import UserError
from lldmix_core.estimators import CONDITIONING, aggregation_estimator, conditioning
from lldmix_core.gram import exact_gram, sketched_gram
from lldmix_core.methods import METHODS
from lldmix_core.models import LanguageModel
from lldmix_core.pass1 import pass1_of
from lldmix_core.prepare import PreparedCorpus, mixture
from lldmix_core.repetition import cap_recipe, run_budget_tokens
from lldmix_core.run_keys import run_key, run_name
from lldmix_core.spec import RunSpec
from lldmix_core.tau import Tau
from lldmix_core.train import lm_loss


class LLDStages:
    """The LLD stages the engine calls: the domain Gram matrix, and the aggregated recipe from a pass 1
    found by its run key (run_keys.run_key)."""

    def __init__(self, store: Store | None):  # None: the Gram alone (bench/eval_cost.py)
        self.store = store

    def gram(self, spec: RunSpec, lm: LanguageModel, corpus: PreparedCorpus) -> np.ndarray:
        """Domain Gram matrix on a few evaluation texts per domain (their tokens cut into context windows)."""
        g = spec.lld.gram
        T = min(spec.arch.block_size, lm.max_context)
        batches = []
        for d in corpus.domains:
            idx = [i for i, dom in enumerate(corpus.texts.domains) if dom == d][: g.texts_per_domain]
            toks: list[int] = []
            for i in idx:
                toks += [lm.tokenizer.bos_id, *lm.tokenizer.encode(corpus.texts.texts[i])]
            n = max(1, (len(toks) - 1) // T)
            t = torch.tensor(toks[: n * T + 1] if len(toks) > T else toks, device=lm.device)
            if len(t) <= T:
                batches.append([(t[:-1][None], t[1:][None])])
            else:
                batches.append([(t[:-1][: n * T].view(n, T), t[1:][: n * T].view(n, T))])
        loss_fn = lambda module, x, y: lm_loss(lm, x, y)  # noqa: E731  (ℓ_k = −loss)
        if g.estimator == "exact":
            return exact_gram(lm.module, batches, loss_fn)
        return sketched_gram(lm.module, batches, loss_fn, sketch_dim=g.sketch_dim, seed=0)

    # ------------------------------------------------------------------ aggregated-LLD
    @staticmethod
    def recipe_name(spec: RunSpec, seed: int, tau_setting: Tau, method: str) -> str:
        """The stored recipe of `method` (an aggregating method) for this seed and τ setting."""
        return run_name(spec, seed, method, tau_setting)

    def aggregate(self, spec: RunSpec, corpus: PreparedCorpus, seed: int, tau_setting: Tau,
                  target_id: int, method: str, pass1_path: str | None = None) -> tuple[np.ndarray, float | None]:
        """`method`'s fixed recipe (pass 2) and pass 1's resolved τ: the registry estimator lld.aggregation names
        (estimators.aggregation_estimator; the default `geometric` is `paper`, the geometric mean of
        softmax(Δ_t/τ)·prior over pass 1's schedule steps: the weights pass 1 trained with) applied to pass 1's
        stored Δ_t (and G_t). METHODS[method].aggregates names pass 1; `pass1_path`: the training path pass 1
        took (its run key says it; None: one model at a time).

        τ = ∞ needs no pass 1: softmax(Δ/∞) is the prior at every step, and so is any mean of it."""
        if tau_setting.is_inf:
            K = len(corpus.domains)
            prior = mixture(corpus.domains, spec.lld.prior, None, "lld.prior") if spec.lld.prior else np.full(K, 1.0 / K)
            self.store.save_recipe(name=self.recipe_name(spec, seed, tau_setting, method), method=f"{method}-tau-inf",
                                   weights=dict(zip(corpus.domains, map(float, prior))),
                                   provenance={"method": method, "tau_setting": tau_setting.text, "seed": seed,
                                               "note": "tau = inf: the prior by definition, no pass 1",
                                               "corpus_hash": corpus.info.content_hash, "spec_hash": spec.spec_hash,
                                               PROVENANCE_KEY: corpus_manifest(corpus)})
            return prior, math.inf
        pass1_method = METHODS[method].aggregates
        found = self.store.get_run_by_key(run_key(spec.spec_hash, corpus.info.content_hash, seed, pass1_method,
                                                  tau_setting, target_id, pass1_path))
        pass1 = [found] if found is not None and found.status == "finished" else []
        if not pass1:
            raise UserError(f"{method} needs a finished {pass1_method} run (pass 1) with the same seed")
        name = spec.lld.aggregation
        est = aggregation_estimator(name)
        p = pass1_of(self.store, pass1[0], spec, corpus.domains)
        if p is None or not est.available(p):
            raise UserError(f"lld.aggregation {name}: pass 1 (run {pass1[0].id}) stored no Δ_t"
                            + ("/G_t" if "gram" in est.needs else "") + " (it was made by an older lldmix or "
                            "without lld.record_gram); give the spec a new name to rerun pass 1")
        schedule = [int(s) for s in p.steps]
        agg = est.fn(p)
        extra = {"estimator": est.name, "estimator_description": est.description}
        if est.phases is not None:  # a phased recipe (two-stage): pass 2 trains its phases, in this order
            extra["phases"] = [{"until": float(u), "weights": dict(zip(corpus.domains, map(float, w)))}
                               for u, w in est.phases(p)]
        if est.name in CONDITIONING:
            extra["gram_conditioning"] = conditioning(p, *CONDITIONING[est.name])
        budget, unique = run_budget_tokens(spec), {d: corpus.streams.n_tokens(d) for d in corpus.domains}
        if spec.lld.max_epochs is not None:  # capped before it is stored, so export and pass 2 use the same recipe
            capped, note = cap_recipe(dict(zip(corpus.domains, map(float, agg))), budget, unique, spec.lld.max_epochs)
            agg = np.array([capped[d] for d in corpus.domains])
            extra["epoch_cap"] = note  # None: no domain was over the cap
        target = self.store.get_run(pass1[0].id)
        provenance = {**extra, "budget_tokens": budget, "unique_tokens": unique,
            "base": spec.base.model_dump(mode="json", exclude_none=True), "target": self.store.get_model(target.target_model_id).name,
            "tau": _finite_or_str(target.tau), "tau_setting": tau_setting.text, "unit": spec.lld.unit, "steps_aggregated": schedule,
            "aggregation": spec.lld.aggregation, "method": method, "seed": seed,
            "corpus_hash": corpus.info.content_hash, "spec_hash": spec.spec_hash, "pass1_run_id": pass1[0].id,
            PROVENANCE_KEY: corpus_manifest(corpus),  # versioned domains: names and the data behind them
        }
        self.store.save_recipe(name=self.recipe_name(spec, seed, tau_setting, method), method=f"{method}-{spec.lld.aggregation}",
                               weights=dict(zip(corpus.domains, map(float, agg))), provenance=provenance,
                               run_id=pass1[0].id)
        return agg, target.tau


def corpus_manifest(corpus: PreparedCorpus) -> dict:
    """The prepared corpus's domain manifest (domain_manifest.py): recorded in every recipe it makes."""
    return of_texts(corpus.domains, corpus.texts.domains, corpus.texts.texts)


def subsample(corpus: PreparedCorpus, per_domain: int | None, seed: int) -> np.ndarray | None:
    """Indices of a seeded subsample of `per_domain` evaluation texts per domain (None: use all)."""
    if per_domain is None:
        return None
    rng = np.random.default_rng(1_000_003 + seed)
    doms = np.array(corpus.texts.domains)
    idx = [rng.choice(np.flatnonzero(doms == d), size=min(per_domain, int((doms == d).sum())), replace=False)
           for d in corpus.domains]
    return np.sort(np.concatenate(idx))


def _finite_or_str(x):
    return x if x is None or math.isfinite(x) else str(x)
