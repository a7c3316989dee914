"""Mixture behaviours (lldmix_core/behaviours/): closed forms of each kind's re-weighting, the EMA example
added in its own module and the registry only, trained end to end with its stored weights checked step by
step against the stored Δ_t, and a guard that nothing outside the registry compares method or kind names.

Mutations seen to fail these tests: the Reweighter passing the prior instead of the weights in force as
`current` (the EMA recursion breaks at the second schedule step); the EMA ignoring β.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from lldmix_core import mathcore as mc
from lldmix_core.behaviours import Adjusted, EmaIterative, Iterative
from lldmix_core.methods import METHODS, PARENT_ROW

ROOT = Path(__file__).resolve().parents[1]


def test_iterative_adjusted_and_ema_reweight_by_their_closed_forms():
    rng = np.random.default_rng(0)
    delta, prior, current = rng.normal(size=5), np.full(5, 0.2), rng.dirichlet(np.ones(5))
    A = rng.normal(size=(5, 5))
    G = A @ A.T + np.eye(5)
    soft = np.exp(delta / 0.7) * prior / np.sum(np.exp(delta / 0.7) * prior)
    it = Iterative().reweight(delta, 0.7, prior, current, gram=lambda: pytest.fail("iterative needs no Gram"), ridge=0.0)
    assert it.gram is None and np.allclose(it.weights, soft)
    adj = Adjusted().reweight(delta, 0.7, prior, current, gram=lambda: G, ridge=1e-3)
    assert adj.gram is G and np.allclose(adj.weights, mc.adjusted_weights(delta, G, 0.7, prior, ridge=1e-3))
    ema = EmaIterative(beta=0.25).reweight(delta, 0.7, prior, current, gram=None, ridge=0.0)
    assert np.allclose(ema.weights, 0.25 * current + 0.75 * soft) and ema.weights.sum() == pytest.approx(1.0)
    assert np.allclose(EmaIterative(beta=0.0).reweight(delta, 0.7, prior, current, None, 0.0).weights, soft)
    with pytest.raises(ValueError, match=r"EMA β must be in \[0, 1\)"):
        EmaIterative(beta=1.0)


SPEC = """
name: ema
seeds: [0]
tokenizer: bytes
corpus: {local: true, eval_per_domain: 2}
arch: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}
target: {train: {steps: 4, seed: 99, multipliers: {Python: 3.0}}}
training: {steps: 12, batch_size: 2, lr: 1.0e-2, warmup_steps: 1, checkpoint_every: 100}
eval_steps: [12]
methods: [iterative-lld, ema-lld]
lld: {tau: 0.5, unit: token}
kl: {sampled: {n_samples: 0}}
tracking: {mlflow: false}
"""


def test_ema_lld_trains_end_to_end_and_stores_the_moving_average_of_its_estimates(tmp_path):
    from conftest import fresh_home
    from lldmix_core.engine import Engine
    from lldmix_core.spec import RunSpec

    with fresh_home(tmp_path / "home") as (settings, store):
        spec = RunSpec.model_validate(yaml.safe_load(SPEC))
        outcome = Engine(store, settings, verbose=False).run(spec)
        runs = {r.method: r for r in outcome.runs}
        domains = store.get_corpus(store.get_run(runs["ema-lld"].run_id).corpus_id).domains
        beta = METHODS["ema-lld"].behaviour.beta
        checked = 0
        for method in ("iterative-lld", "ema-lld"):
            run_id = runs[method].run_id
            weights = store.get_weights(run_id)
            delta: dict[int, dict[str, float]] = {}
            for m in store.get_metrics(run_id):
                if m["key"].startswith("delta/"):
                    delta.setdefault(m["step"], {})[m["key"][6:]] = m["value"]
            steps = sorted(delta)
            assert len(steps) >= 3, f"{method}: Δ stored at {steps}"
            previous = np.full(len(domains), 1.0 / len(domains))  # the prior: the weights in force at step 0
            for s in steps:
                soft = mc.lld_weights(np.array([delta[s][d] for d in domains]), 0.5, np.full(len(domains), 1 / len(domains)))
                expected = soft if method == "iterative-lld" else beta * previous + (1 - beta) * soft
                stored = np.array([weights[s][d] for d in domains])
                assert np.allclose(stored, expected, atol=1e-9), (method, s)
                previous = stored
                checked += 1
        assert checked >= 6


def test_no_method_or_kind_name_is_compared_outside_the_registry():
    names = set(METHODS) | {PARENT_ROW} | {m.kind for m in METHODS.values()}
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    compared = re.compile(rf"""(==|!=)\s*["']({alternatives})["']|["']({alternatives})["']\s*(==|!=|\bin\b|\bnot in\b)""")
    kind_lookup = re.compile(r"next\([^)]*\.(mixture|kind|behaviour)\b")
    found = []
    for folder in ("lldmix_core", "app", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if (path.name == "methods.py" and path.parent.name == "lldmix_core") or path.name == "audit_offline.py":
                continue  # the registry itself; the audit reads a vulnerability database's "fixed" field
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if compared.search(line) or kind_lookup.search(line) or ".mixture ==" in line:
                    found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)
