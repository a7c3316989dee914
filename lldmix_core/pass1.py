"""A finished pass 1 (an iterative-LLD run) as the estimators see it: its Δ_t (and G_t, when
lld.record_gram was on) at every schedule step, read from the store's run_metrics (`delta/<domain>`,
`gram/<i>/<j>`; i, j index the corpus's sorted domains). Used by the engine (aggregated-LLD with a
registry estimator) and by the benchmark's leaderboard. No torch.

Pass 1's τ (`pass1_tau`): the resolved τ its row stores (runs.tau, written once by tau.record_resolved).
A row without one (a run stopped before its first estimate wrote it) gets its setting (runs.tau_setting)
resolved on its first stored Δ_t, which is what the run itself does at its first estimate; a row with
neither is refused (UserError), never given a τ by default."""

from __future__ import annotations

import numpy as np

from lldmix_core.errors import UserError
from lldmix_core.estimators import Pass1
from lldmix_core.tau import Tau


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
    return Pass1(np.array(steps), spec.training.steps, D, pass1_tau(run, D[0]), prior, G, l_target, l_reference)


def pass1_tau(run, first_delta: np.ndarray) -> float:
    """The τ pass 1 trained with (see the module docstring): runs.tau, else its setting resolved on
    `first_delta` [K] (Δ at its first schedule step); UserError when the row records neither."""
    if run.tau is not None:
        return float(run.tau)
    setting = Tau.of(run.tau_setting)
    if setting.is_none:
        raise UserError(f"run {run.id} ({run.name}) records no τ (neither runs.tau nor runs.tau_setting): "
                        "its Δ_t cannot be turned into weights")
    return setting.resolve(first_delta)
