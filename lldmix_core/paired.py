"""KL(target ‖ model) − KL(target ‖ reference) on the same draws from the target, from the two
models' stored vectors: the target's log-probability cancels in the difference, so nothing is
scored here. Torch-free, so the report and the dashboard share it."""

from __future__ import annotations

import math

import numpy as np

from lldmix_core import mathcore as mc


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
