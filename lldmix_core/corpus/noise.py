"""How much of a model-map KL comes from which evaluation texts were drawn: bootstrap standard
errors over the texts of a stored corpus, from log-likelihood vectors already in the database."""

from __future__ import annotations

from itertools import combinations

import numpy as np

from lldmix_core.errors import UserError
from lldmix_core.mathcore.bootstrap import kl_bootstrap, kl_difference_bootstrap


def _vector(store, model_ref: str, corpus) -> tuple[str, np.ndarray]:
    info = store.get_model(model_ref)
    got = store.get_loglik_vector(info.id, corpus.id, info.tokenizer_hash)
    if got is None:
        raise UserError(f"--model {model_ref}: no scores on corpus {corpus.name!r}; "
                        f"run `lldmix score --model {info.name} --corpus {corpus.name}` first")
    return info.name, got[0].astype(np.float64)


def first_per_domain(domains: list[str], k: int) -> np.ndarray:
    """Indices of the first `k` texts of each domain, in corpus order. A corpus stores each domain's
    texts in its seeded sampling order, so these are exactly the texts the same corpus settings with
    `eval_per_domain: k` (same seed) would have drawn."""
    seen: dict[str, int] = {}
    keep = []
    for i, d in enumerate(domains):
        seen[d] = seen.get(d, 0) + 1
        if seen[d] <= k:
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def noise_report(store, corpus_ref: str, reference: str, models: list[str], *, n_boot: int = 2000,
                 seed: int = 0, per_domain: int | None = None) -> list[str]:
    """Lines: each model's KL to `reference` (bits/byte) ± its bootstrap SE, then each pair's paired
    difference ± SE, on the stored corpus's texts (or the first `per_domain` of each domain)."""
    corpus = store.get_corpus(int(corpus_ref) if corpus_ref.isdigit() else corpus_ref)
    texts = store.load_texts(corpus.id)
    keep = first_per_domain(list(texts.domains), per_domain) if per_domain else np.arange(len(texts.domains))
    n_bytes = texts.n_bytes.astype(np.float64)[keep]
    ref_name, ref = _vector(store, reference, corpus)
    ref = ref[keep]
    vecs = [(name, v[keep]) for name, v in (_vector(store, m, corpus) for m in models)]
    subset = f"first {per_domain} per domain: " if per_domain else ""
    lines = [f"corpus {corpus.name!r} ({subset}{len(keep)} texts, mean {n_bytes.mean():.1f} bytes/text); "
             f"reference {ref_name}; {n_boot} bootstrap resamples of the texts (seed {seed})"]
    for name, v in vecs:
        b = kl_bootstrap(v, ref, n_bytes, n_boot=n_boot, seed=seed)
        lines.append(f"  KL({name}, {ref_name}) model-map = {b.bits_per_byte:.4f} ± {b.se_bits_per_byte:.4f} bits/byte "
                     f"({b.nats_per_text:.1f} ± {b.se_nats_per_text:.1f} nats/text; SE {100 * b.relative_se:.1f} % "
                     "of the estimate)")
    for (na, va), (nb, vb) in combinations(vecs, 2):
        est, se = kl_difference_bootstrap(va, vb, ref, n_bytes, n_boot=n_boot, seed=seed)
        lines.append(f"  KL({na}) − KL({nb}) = {est:+.4f} ± {se:.4f} bits/byte (paired over the same texts)")
    return lines
