"""How far the model map's KL estimate agrees with the sampled KL, on a finished spec's models.

Two views (issue: is the second-order estimate a usable ranking of closeness?):
- **pairs on the map** — per seed, every pair among the target and the methods' final models: the
  model-map KL (½ var over the evaluation texts of the log-likelihood difference, symmetric) against
  the sampled KL symmetrised, ½[KL(i ‖ j) + KL(j ‖ i)], each direction on texts drawn from the first
  model and scored under both. Spearman's ρ over the pairs, and the ratio model map / sampled.
- **along each trajectory** — per run, the two estimators' stored KL(target ‖ model) at every step
  where both were measured: Spearman's ρ over those steps.

The draws from each final model are made once per (model, n, length, seed) and stored like the
target's (sampled_eval.target_samples), so a second call only reads the database.
All KLs here are bits/byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core.evaluate import load_stored_model
from lldmix_core.kl_rows import MODELMAP, SAMPLED, is_kind, last_kl
from lldmix_core.outcomes import SpecOutcome
from lldmix_core.sampled_eval import model_sample_logliks, target_samples


@dataclass(frozen=True)
class PairAgreement:
    seed: int
    labels: tuple[str, ...]  # "target" and the methods, in the order of the pairs below
    pairs: tuple[tuple[int, int], ...]  # indices into labels
    modelmap_bits_per_byte: np.ndarray  # [P]
    sampled_bits_per_byte: np.ndarray  # [P], symmetrised
    spearman: float
    sampled_directed: np.ndarray  # [M, M]: KL(i ‖ j) on draws from model i (row), zero diagonal


@dataclass(frozen=True)
class TrajectoryAgreement:
    seed: int
    method: str
    steps: tuple[int, ...]
    modelmap_bits_per_byte: np.ndarray  # [S] KL(target ‖ model) by the model map
    sampled_bits_per_byte: np.ndarray  # [S] by sampling
    spearman: float


def pairs_on_the_map(store, home: Path, checkpoints_dir: Path, outcome: SpecOutcome, seed: int, *, n: int, n_tokens: int,
                     clip: float = 0.0) -> PairAgreement | None:
    """The seed's target and final models, every pair: model-map vs symmetrised sampled KL."""
    runs = sorted((r for r in outcome.runs if r.seed == seed and r.final_model_id), key=lambda r: r.method)
    if len(runs) < 2:
        return None
    final_rows = [last_kl(store.get_kl(r.run_id), MODELMAP) for r in runs]
    if any(k is None for k in final_rows):
        return None  # a run without a model-map row has no point on the map
    target_id, eval_corpus = final_rows[0].reference_model_id, final_rows[0].corpus_id
    ids = [target_id] + [k.model_id for k in final_rows]
    labels = ("target", *(r.method for r in runs))
    corpus = store.get_corpus(eval_corpus)
    mean_bytes = corpus.n_bytes / corpus.n_texts
    L = []
    for mid in ids:
        vec = store.get_loglik_vector(mid, eval_corpus, store.get_model(mid).tokenizer_hash)
        if vec is None:
            return None
        L.append(vec[0].astype(np.float64))
    L = np.stack(L)
    models = [load_stored_model(store, checkpoints_dir, mid) for mid in ids]
    draws = [target_samples(store, home, lm, mid, n=n, n_tokens=n_tokens, seed=seed) for lm, mid in zip(models, ids)]
    own = [model_sample_logliks(store, s, lm, mid) for s, lm, mid in zip(draws, models, ids)]

    M = len(ids)
    directed = np.zeros((M, M))
    for i in range(M):  # KL(i ‖ j) on i's draws, bits/byte
        for j in range(M):
            if i != j:
                other = model_sample_logliks(store, draws[i], models[j], ids[j])
                d = mc.to_bits_per_byte(mc.per_sample_log_ratio(own[i], other), draws[i].mean_bytes)
                directed[i, j] = mc.sampled_kl_estimate(d)[0]  # the estimator the engine stores
    pairs = tuple(combinations(range(M), 2))
    mm = np.array([mc.nats_per_text_to_bits_per_byte(mc.kl_pair(L[i], L[j], clip), mean_bytes) for i, j in pairs])
    sm = np.array([(directed[i, j] + directed[j, i]) / 2 for i, j in pairs])
    return PairAgreement(seed, labels, pairs, mm, sm, mc.spearman(mm, sm), directed)


def along_trajectories(store, outcome: SpecOutcome) -> list[TrajectoryAgreement]:
    """Per run: the stored model-map and sampled KL(target ‖ model) at the steps where both exist."""
    out = []
    for r in sorted(outcome.runs, key=lambda r: (r.seed, r.method)):
        rows = store.get_kl(r.run_id)
        mm = {k.step: k.bits_per_byte for k in rows if is_kind(k.estimator, MODELMAP)}
        sm = {k.step: k.bits_per_byte for k in rows if is_kind(k.estimator, SAMPLED)}
        steps = tuple(sorted(set(mm) & set(sm)))
        if len(steps) < 2:
            continue
        a, b = np.array([mm[s] for s in steps]), np.array([sm[s] for s in steps])
        out.append(TrajectoryAgreement(r.seed, r.method, steps, a, b, mc.spearman(a, b)))
    return out
