"""Evaluations of identical models made once (lldmix_core/eval_memo.py, used by engine/run.py: Evaluator).

The memo itself against hand-made keys; then one small spec run twice, with the memo and without, in two
homes: every stored number (KL rows, weights, Δ_t, G_t, every run metric) must be identical, while each
evaluation — Δ scoring, Gram matrix, model-map scoring, sampled-KL scoring — runs once per distinct model
(by weight fingerprint) with the memo, and the run without it did repeat some (else the test proves
nothing). The spec repeats on purpose: the seed's base at step 0 of every iterative run, τ = ∞ (uniform's
mixture: aggregated-LLD trains uniform's very models; iterative and adjusted LLD each other's), and a
twin target whose oracle reproduces it.

Mutations seen to fail these tests: the memo keyed without the fingerprint (every test: runs got other
models' scores, e.g. uniform's step-3 model-map KL became the target's 0); the Reweighter ignoring the
Evaluator's memoised Gram (the Gram count test: the base's Gram computed twice).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from lldmix_core.eval_memo import EvalMemo

SPEC = """
name: memo
seeds: [0]
tokenizer: bytes
corpus: {local: true, eval_per_domain: 2, max_bytes: 128, min_bytes: 32}
arch: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}
target: {train: {twin: true, multipliers: {Python: 4.0, C++: 4.0}}}
training: {steps: 6, batch_size: 2, lr: 1.0e-2, warmup_steps: 1, checkpoint_every: 100}
eval_steps: [3, 6]
methods: [uniform, oracle, iterative-lld, aggregated-lld, adjusted-lld]
lld: {tau: [1.0, .inf], unit: token, estimate_texts_per_domain: 1, record_gram: true, gram: {texts_per_domain: 1}}
kl: {sampled: {n_samples: 8, n_tokens: 16, steps: final}}
tracking: {mlflow: false}
"""


# ---------------------------------------------------------------- the memo on its own
def test_memo_computes_once_per_kind_fingerprint_and_key():
    memo, calls = EvalMemo(), []

    def compute(v):
        return lambda: calls.append(v) or v

    assert memo.get("Gram", "fpA", ("c1",), compute(1)) == 1
    assert memo.get("Gram", "fpA", ("c1",), compute(2)) == 1  # found: not computed again
    assert memo.get("Gram", "fpB", ("c1",), compute(3)) == 3  # another model
    assert memo.get("Gram", "fpA", ("c2",), compute(4)) == 4  # another corpus/settings
    assert memo.get("Δ scores", "fpA", ("c1",), compute(5)) == 5  # another kind of evaluation
    assert calls == [1, 3, 4, 5]
    assert memo.hits == {"Gram": 1} and memo.misses == {"Gram": 3, "Δ scores": 1}
    assert memo.summary() == "Gram 1"


def test_disabled_memo_computes_every_time_and_bound_evicts_oldest():
    off, calls = EvalMemo(enabled=False), []
    for _ in range(3):
        off.get("Gram", "fp", (), lambda: calls.append(1) or 1)
    assert len(calls) == 3 and off.find("Gram", "fp", ()) is None
    small = EvalMemo(max_entries=2)
    for fp in ("a", "b"):
        small.keep("k", fp, (), fp)
    assert small.find("k", "a", ()) == "a"  # a used last: b is now the oldest
    small.keep("k", "c", (), "c")
    assert small.find("k", "b", ()) is None and small.find("k", "a", ()) == "a" and small.find("k", "c", ()) == "c"


# ---------------------------------------------------------------- a spec with and without it
def _run(tmp_path_factory, label: str, memo_on: bool) -> dict:
    """Run SPEC in a fresh home; returns the stored rows by run name and the fingerprints of the models
    each evaluation was computed for."""
    from conftest import fresh_home
    from lldmix_core import engine as engine_mod, evaluate, sampled_eval
    from lldmix_core.engine import core as engine_core, run as engine_run
    from lldmix_core.spec import RunSpec

    computed: dict[str, list[str]] = {"Δ scores": [], "Gram": [], "model map": [], "sampled": []}

    def spy(kind, real):
        def wrapped(lm, *a, **k):
            computed[kind].append(lm.fingerprint())
            return real(lm, *a, **k)
        return wrapped

    with fresh_home(tmp_path_factory.mktemp(label) / "home") as (settings, store), pytest.MonkeyPatch.context() as mp:
        eng = engine_mod.Engine(store, settings, verbose=False)
        real_gram = eng.lld.gram
        eng.lld.gram = lambda spec, lm, corpus: computed["Gram"].append(lm.fingerprint()) or real_gram(spec, lm, corpus)
        mp.setattr(engine_run, "score_texts", spy("Δ scores", engine_run.score_texts))
        mp.setattr(evaluate, "score_texts", spy("model map", evaluate.score_texts))
        mp.setattr(sampled_eval, "score_token_ids", spy("sampled", sampled_eval.score_token_ids))
        if not memo_on:
            real_context = engine_core.Engine._context

            def no_memo(self, *a, **k):
                ctx = real_context(self, *a, **k)
                ctx.memo = EvalMemo(enabled=False)
                return ctx
            mp.setattr(engine_core.Engine, "_context", no_memo)
        outcome = eng.run(RunSpec.model_validate(yaml.safe_load(SPEC)))
        rows = {}
        for o in outcome.runs:
            run = store.get_run(o.run_id)
            kl = [(r.step, r.estimator, r.nats_per_text, r.bits_per_byte, r.gap_bits_per_byte, r.stderr_bits_per_byte,
                   r.n_samples) for r in store.get_kl(o.run_id)]
            metrics = sorted((m["step"], m["key"], m["value"]) for m in store.get_metrics(o.run_id))
            rows[run.name] = {"key": run.key, "tau": run.tau, "kl": kl, "weights": store.get_weights(o.run_id),
                              "metrics": metrics}
    return {"rows": rows, "computed": computed}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    return _run(tmp_path_factory, "memo-off", False), _run(tmp_path_factory, "memo-on", True)


def test_stored_numbers_identical_with_and_without_the_memo(both):
    off, on = both
    assert set(on["rows"]) == set(off["rows"]) and len(on["rows"]) == 8  # uniform, oracle, 3 methods × 2 τ
    for name in off["rows"]:
        a, b = off["rows"][name], on["rows"][name]
        assert a["key"] == b["key"], name  # run keys unchanged
        assert a["kl"] == b["kl"], name  # exact equality: float for float
        assert a["weights"] == b["weights"], name
        assert a["metrics"] == b["metrics"], name
    # the rows compared are the real thing: Δ_t and G_t at the schedule steps, and a sampled KL at the end
    keys = {k for _, k, _ in off["rows"]["memo.adjusted-lld.seed0.tau1.0"]["metrics"]}
    assert any(k.startswith("delta/") for k in keys) and any(k.startswith("gram/") for k in keys)
    assert {r[1] for r in off["rows"]["memo.uniform.seed0"]["kl"]} == {"modelmap", "sampled"}


@pytest.mark.parametrize("kind", ["Δ scores", "Gram", "model map", "sampled"])
def test_each_distinct_model_evaluated_once(both, kind):
    off, on = both
    repeated = [fp for fp in set(off["computed"][kind]) if off["computed"][kind].count(fp) > 1]
    assert repeated, f"{kind}: the run without the memo repeated nothing; the spec no longer tests reuse"
    assert sorted(on["computed"][kind]) == sorted(set(off["computed"][kind]))  # each model once, the same models


def test_tau_inf_runs_are_uniform_and_the_oracle_is_the_target(both):
    """Why the spec repeats (an independent check of the premise): aggregated-LLD at τ = ∞ stores uniform's
    very KL values, and the oracle's final model-map KL to its twin target is exactly 0."""
    rows = both[1]["rows"]
    strip = lambda kl: [r[1:] for r in kl]  # noqa: E731
    assert strip(rows["memo.aggregated-lld.seed0.tauinf"]["kl"]) == strip(rows["memo.uniform.seed0"]["kl"])
    final = [r for r in rows["memo.oracle.seed0"]["kl"] if r[0] == 6]
    assert final and all(r[2] == 0.0 and r[3] == 0.0 for r in final)
