"""A run's final sampled KL against the reference run of its seed (the registry's baseline: uniform), the
one home of "the paired difference to uniform" for the CLI report, the benchmark leaderboard and the
dashboard (`pair_with_reference`, `across_seeds`).

Within a seed both runs were scored on the same draws from the target: KL(target ‖ model) −
KL(target ‖ reference) comes from the two models' stored vectors, the target's log-probability cancelling
in the difference, so nothing is scored here (`paired_sampled_difference`). Torch-free."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from lldmix_core import mathcore as mc
from lldmix_core.methods import baseline_method


@dataclass(frozen=True)
class FinalSampled:
    """A run's final sampled KL as its reader holds it: method, seed, KL(target ‖ model) in bits/byte
    (NaN: none), the samples corpus of the draws and the final model scored on them; `of`: the reader's
    own row for the run, carried through untouched."""

    method: str
    seed: int
    bits_per_byte: float
    corpus_id: int | None
    model_id: int | None
    of: object = None


@dataclass(frozen=True)
class PairedToReference:
    """One run beside its seed's reference run. `difference`: run − reference, each one's final sampled KL
    (bits/byte); `within`: (mean, standard error) of the per-draw paired difference over the same draws, or
    None when the two were not scored on the same draws (or a stored vector is missing)."""

    run: FinalSampled
    reference: FinalSampled
    difference: float
    within: tuple[float, float] | None


def pair_with_reference(store, finals: Iterable[FinalSampled], reference: str | None = None) -> list[PairedToReference]:
    """Every run that is not of the `reference` method (default: the registry's baseline, uniform) beside that
    method's run of the same seed, in the order given; a run whose seed has no reference run is left out.
    `store` None: no per-draw difference (`within` None)."""
    reference = reference or baseline_method()
    finals = list(finals)
    refs = {f.seed: f for f in finals if f.method == reference}
    out = []
    for f in finals:
        u = refs.get(f.seed)
        if f.method == reference or u is None:
            continue
        within = None
        if store is not None and f.corpus_id is not None and f.corpus_id == u.corpus_id and f.model_id and u.model_id:
            within = paired_sampled_difference(store, f.corpus_id, f.model_id, u.model_id)
        out.append(PairedToReference(f, u, f.bits_per_byte - u.bits_per_byte, within))
    return out


def across_seeds(pairs: Iterable[PairedToReference]) -> mc.PairedSummary | None:
    """Over seeds (the replicates), the paired summary of the runs' final sampled KLs against their seeds'
    reference runs (mathcore.paired_summary: mean difference, t interval, wins), taken in seed order;
    None when there is no pair or a KL is missing."""
    ordered = sorted(pairs, key=lambda p: p.run.seed)
    m = np.array([p.run.bits_per_byte for p in ordered], dtype=np.float64)
    u = np.array([p.reference.bits_per_byte for p in ordered], dtype=np.float64)
    if not len(m) or not (np.all(np.isfinite(m)) and np.all(np.isfinite(u))):
        return None
    return mc.paired_summary(m, u)


def paired_sampled_difference(store, corpus_id: int, model_id: int, reference_model_id: int) -> tuple[float, float] | None:
    """(mean, standard error) in bits/byte over the draws of the samples corpus `corpus_id`, or None
    when either model has no stored vector on it. Positive: the model is farther from the target."""
    tokenizer_hash = store.get_model(model_id).tokenizer_hash
    a = store.get_loglik_vector(model_id, corpus_id, tokenizer_hash)
    b = store.get_loglik_vector(reference_model_id, corpus_id, tokenizer_hash)
    if a is None or b is None:
        return None
    mean_bytes = float(store.get_corpus(corpus_id).settings.get("mean_bytes") or 1.0)
    # per draw: log q_ref(x) − log q_model(x) = [log p − log q_model] − [log p − log q_ref]
    diff = (b[0].astype(np.float64) - a[0].astype(np.float64)) / math.log(2) / mean_bytes
    return mc.mean_se(diff)
