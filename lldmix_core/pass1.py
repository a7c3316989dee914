"""A finished pass 1 (an iterative-LLD run) as the estimators see it: its Δ_t (and G_t, when
lld.record_gram was on) at every schedule step, read from the store's run_metrics (`delta/<domain>`,
`gram/<i>/<j>`; i, j index the corpus's sorted domains). Used by the engine (aggregated-LLD with a
registry estimator) and by the benchmark's leaderboard. No torch."""

from __future__ import annotations

import numpy as np

from lldmix_core.estimators import Pass1


def pass1_of(store, run, spec, domains, l_target=None, l_reference=None) -> Pass1 | None:
    """The stored Δ_t (and G_t) of an iterative run as a Pass1, or None when it stored none
    (runs made before lldmix stored Δ_t)."""
    K = len(domains)
    delta, gram = {}, {}
    for m in store.get_metrics(run.id):
        key, step = m["key"], m["step"]
        if key.startswith("delta/"):
            delta.setdefault(step, {})[key[6:]] = m["value"]
        elif key.startswith("gram/"):
            i, j = (int(x) for x in key[5:].split("/"))
            gram.setdefault(step, np.full((K, K), np.nan))[i, j] = m["value"]
    steps = sorted(s for s, d in delta.items() if len(d) == K)
    if not steps:
        return None
    D = np.array([[delta[s][d] for d in domains] for s in steps])
    G = np.array([gram[s] for s in steps]) if all(s in gram for s in steps) else None
    if G is not None and not np.all(np.isfinite(G)):
        G = None
    prior = np.full(K, 1.0 / K)
    if spec.lld.prior:
        prior = np.array([spec.lld.prior.get(d, 0.0) for d in domains])
    return Pass1(np.array(steps), spec.training.steps, D, float(run.tau if run.tau is not None else 1.0), prior,
                 G, l_target, l_reference)
