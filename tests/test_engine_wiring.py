"""The engine's wiring, checked against independent recomputation from what it STORED (tiny NanoGPTs,
SQLite, no MLflow, no CLI subprocess). Each test names the wiring mutation it was seen to catch.

One spec runs once per module: uniform, iterative-LLD (pass 1), aggregated-LLD (pass 2), adjusted-LLD
and distill-kl, one seed, a few steps. Log-likelihoods are in nats/token (lld.unit: token).

Mutations tried (applied to the engine together in one run; each test below failed, the τ test
passed): Δ = ℓ_base − ℓ_target in the re-weighting (tests 1, 2), arithmetic instead of geometric
aggregation (test 3), pass 2's base built with seed + 1 (test 4), a random NanoGPT of seed + 7 as the
distillation teacher (test 5).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

SPEC = """
name: wiring
seeds: [0]
tokenizer: bytes
corpus: {local: true, eval_per_domain: 2}
arch: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}
target: {train: {steps: 6, seed: 1234, multipliers: {Python: 3.0, C++: 3.0}}}
training: {steps: 8, batch_size: 2, lr: 1.0e-2, warmup_steps: 1, checkpoint_every: 100}
methods: [uniform, iterative-lld, aggregated-lld, adjusted-lld, distill-kl]
lld: {tau: 0.05, unit: token, gram: {texts_per_domain: 1}}
kl: {sampled: {n_samples: 64, n_tokens: 32}}
tracking: {mlflow: false}
"""


HOMES: dict = {}  # "wiring": the fixture's Settings (home, checkpoints), for tests that load its models


@pytest.fixture(scope="module")
def wired(tmp_path_factory):
    """(store, spec, outcome, grams, teachers): grams[(run step)] the Gram matrices adjusted-LLD solved
    with, teachers the fingerprints of the models handed to the distillation loss."""
    from conftest import fresh_home
    from lldmix_core import engine as engine_mod
    from lldmix_core.engine import run_stages
    from lldmix_core.spec import RunSpec

    with fresh_home(tmp_path_factory.mktemp("wiring") / "home") as (settings, store):
        spec = RunSpec.model_validate(yaml.safe_load(SPEC))
        grams: list[np.ndarray] = []
        teachers: list[str] = []
        eng = engine_mod.Engine(store, settings, verbose=False)
        real_gram, real_loss = eng.lld.gram, run_stages.distill_loss_fn

        def spy_gram(*a, **k):
            g = real_gram(*a, **k)
            grams.append(np.array(g))
            return g

        def spy_loss(teacher, *a, **k):
            teachers.append(teacher.fingerprint())
            return real_loss(teacher, *a, **k)

        eng.lld.gram = spy_gram  # the Gram part the engine hands its runs (engine/lld.py)
        run_stages.distill_loss_fn = spy_loss
        HOMES["wiring"] = settings
        try:
            outcome = eng.run(spec)
        finally:
            run_stages.distill_loss_fn = real_loss
        yield store, spec, outcome, grams, teachers


def _run(store, outcome, method):
    (r,) = [o for o in outcome.runs if o.method == method]
    return store.get_run(r.run_id)


def _domain_ll(store, model_id: int, corpus_id: int, domains) -> np.ndarray:
    """The stored per-domain mean log-likelihood of one model, nats/token, in `domains` order."""
    rows = {r.domain: r.nats_per_token for r in store.domain_loglik_table(corpus_id) if r.model_id == model_id}
    return np.array([rows[d] for d in domains])


def _model_at(store, run_id: int, step: int) -> int:
    model_id = store.final_model_id(run_id, step)
    assert model_id is not None, f"run {run_id} stored no model at step {step}"
    return model_id


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _reweighted_steps(store, run):
    weights = store.get_weights(run.id)
    steps = sorted(s for s in weights if s < 8)  # the last step stores the weights in use, not a new estimate
    assert len(steps) >= 3
    return weights, steps


def test_iterative_weights_are_softmax_of_stored_delta(wired):
    """Every stored iterative-LLD weight = softmax((ℓ_target − ℓ_model)/τ) (uniform prior), from the
    STORED domain log-likelihoods of that step's checkpoint and of the target.
    Mutation seen caught: Δ's sign flipped in the engine (base − target)."""
    store, spec, outcome, _, _ = wired
    run = _run(store, outcome, "iterative-lld")
    domains = sorted(store.get_weights(run.id)[0])
    target = _domain_ll(store, run.target_model_id, run.corpus_id, domains)
    weights, steps = _reweighted_steps(store, run)
    assert run.tau == pytest.approx(0.05) and run.tau_setting == "0.05"
    for s in steps:
        model = _domain_ll(store, _model_at(store, run.id, s), run.corpus_id, domains)
        expected = _softmax((target - model) / 0.05)
        assert [weights[s][d] for d in domains] == pytest.approx(expected, rel=1e-3, abs=1e-6), f"step {s}"


def test_adjusted_weights_are_the_gram_formula(wired):
    """Stored adjusted-LLD weights = softmax(G⁻¹Δ/τ) with G the Gram matrix the engine solved with at
    that step (recorded) and Δ from the STORED domain log-likelihoods; G⁻¹Δ recomputed here as
    (G/mean(diag G) + ridge·I)⁻¹Δ (mathcore's gram_solve, restated here).
    Mutation seen caught: Δ's sign flipped in the engine."""
    store, spec, outcome, grams, _ = wired
    run = _run(store, outcome, "adjusted-lld")
    domains = sorted(store.get_weights(run.id)[0])
    target = _domain_ll(store, run.target_model_id, run.corpus_id, domains)
    weights, steps = _reweighted_steps(store, run)
    assert len(grams) == len(steps)
    for s, G in zip(steps, grams):
        delta = target - _domain_ll(store, _model_at(store, run.id, s), run.corpus_id, domains)
        k = len(domains)
        solved = np.linalg.solve(G / (np.trace(G) / k) + spec.lld.gram.ridge * np.eye(k), delta)
        assert np.dot(solved, delta) > 0  # G⁻¹ is positive definite: the solve keeps Δ's direction on average
        expected = _softmax(solved / 0.05)
        assert [weights[s][d] for d in domains] == pytest.approx(expected, rel=1e-3, abs=1e-6), f"step {s}"


def test_aggregated_recipe_is_geometric_mean_of_stored_pass1(wired):
    """aggregated-LLD's recipe (and the weights it trained with) = normalised exp(mean log α_t) over pass
    1's STORED weights at the LLD schedule steps; its runs.tau is pass 1's resolved τ.
    Mutation seen caught: arithmetic mean instead of geometric."""
    from lldmix_core.mathcore import lld_schedule

    store, spec, outcome, _, _ = wired
    pass1, pass2 = _run(store, outcome, "iterative-lld"), _run(store, outcome, "aggregated-lld")
    w1 = store.get_weights(pass1.id)
    domains = sorted(w1[0])
    steps = [s for s in lld_schedule(spec.training.steps) if s in w1]
    W = np.array([[w1[s][d] for d in domains] for s in steps])
    geo = np.exp(np.log(W).mean(axis=0))
    geo /= geo.sum()
    recipe = store.get_recipe("wiring.aggregated-lld.seed0")["weights"]
    assert [recipe[d] for d in domains] == pytest.approx(geo, rel=1e-9)
    used = store.get_weights(pass2.id)
    assert [used[min(used)][d] for d in domains] == pytest.approx(geo, rel=1e-9)
    assert pass2.tau == pytest.approx(pass1.tau) and pass2.tau_setting == "0.05"


def test_pass2_starts_where_pass1_and_uniform_start(wired):
    """Same seed, same initial model: the base models (and step-0 checkpoints) of uniform, pass 1 and
    pass 2 have one fingerprint. Mutation seen caught: pass 2 built from another init seed."""
    store, spec, outcome, _, _ = wired
    prints = set()
    for m in ("uniform", "iterative-lld", "aggregated-lld"):
        run = _run(store, outcome, m)
        prints.add(store.get_model(run.base_model_id).fingerprint)
        prints.add(store.get_model(_model_at(store, run.id, 0)).fingerprint)
    assert len(prints) == 1


def test_distillation_teacher_is_the_target(wired):
    """The model handed to the distillation loss is the target (same fingerprint as runs.target_model_id),
    and the student's base is not. Mutation seen caught: another teacher (a fresh random NanoGPT of
    another seed) handed to the distillation loss."""
    store, spec, outcome, _, teachers = wired
    run = _run(store, outcome, "distill-kl")
    target_print = store.get_model(run.target_model_id).fingerprint
    assert teachers == [target_print]
    assert store.get_model(run.base_model_id).fingerprint != target_print


def test_no_none_text_for_tau(wired):
    store, spec, outcome, _, _ = wired
    for o in outcome.runs:
        run = store.get_run(o.run_id)
        assert run.tau_setting != "None" and "tau_setting" not in run.config
        assert (run.tau_setting is None) == (o.method in ("uniform", "distill-kl"))
        assert (run.tau is None) == (run.tau_setting is None) and (run.tau is None or math.isfinite(run.tau))


def test_every_run_records_its_code_and_corpus_and_a_paired_sampled_kl(wired):
    """Provenance on every run row (commit when in a checkout, numerics version, corpus hash), and the
    sampled KL of each run's final model: computed on the SAME draws for every method of the seed, and
    equal to the mean over draws of log p_target − log p_model recomputed from the stored vectors.
    Mutation tried: drawing per run instead of per seed (seed = run id) — the draws differ and the
    first assertion on corpus ids fails."""
    from lldmix_core import provenance

    store, spec, outcome = wired[0], wired[1], wired[2]
    runs = store.list_runs(parent_id=outcome.parent_run_id)
    for r in runs + [store.get_run(outcome.parent_run_id)]:
        assert r.provenance["numerics_version"] == provenance.NUMERICS_VERSION
        assert r.provenance["corpus_hash"] == outcome.corpus_hash
        assert r.git_commit == provenance.code_version()["git_commit"]
    final = {r.method: [k for k in store.get_kl(r.id) if k.estimator == "sampled" and k.step == spec.training.steps][0]
             for r in runs}
    assert len({k.corpus_id for k in final.values()}) == 1  # one set of draws for the seed: paired
    k = final["uniform"]
    corpus = store.get_corpus(k.corpus_id)
    target_ll = store.get_loglik_vector(k.reference_model_id, k.corpus_id, store.get_model(k.reference_model_id).tokenizer_hash)[0]
    model_ll = store.get_loglik_vector(k.model_id, k.corpus_id, store.get_model(k.model_id).tokenizer_hash)[0]
    d = (target_ll.astype(np.float64) - model_ll.astype(np.float64)) / math.log(2) / corpus.settings["mean_bytes"]
    assert k.n_samples == spec.kl.sampled.n_samples == d.size
    assert k.bits_per_byte == pytest.approx(d.mean(), rel=1e-9)
    assert k.stderr_bits_per_byte == pytest.approx(d.std(ddof=1) / math.sqrt(d.size), rel=1e-9)


def test_estimator_agreement_reads_the_stored_estimates_and_its_own_draws(wired):
    """The map-pair agreement on the seed's target and final models: its model-map KL of (target, m)
    is the stored final model-map row of m, and its KL(target ‖ m) on the target's draws (same n and
    seed as the spec) is the stored final sampled row, because both reuse the stored draws and
    vectors. Each final model is loaded from its run's checkpoint and must carry the evaluated
    fingerprint. Mutations tried: the pair KL in the other direction (j's draws) — the sampled
    equality fails; the models' order shuffled against their vectors — the model-map equality fails."""
    from lldmix_core import agreement, mathcore as mc

    store, spec, outcome = wired[0], wired[1], wired[2]
    settings = HOMES["wiring"]
    s = spec.kl.sampled
    a = agreement.pairs_on_the_map(store, settings.home, settings.checkpoints_dir, outcome, 0, n=s.n_samples,
                                   n_tokens=s.n_tokens, clip=spec.kl.clip)
    assert a.labels[0] == "target" and len(a.labels) == len(outcome.runs) + 1
    assert len(a.pairs) == len(a.labels) * (len(a.labels) - 1) // 2
    by_method = {r.method: r for r in outcome.runs}
    for k, label in enumerate(a.labels[1:], start=1):
        rows = store.get_kl(by_method[label].run_id)
        last = spec.training.steps
        mm = [r for r in rows if r.estimator == "modelmap" and r.step == last][0]
        sampled = [r for r in rows if r.estimator == "sampled" and r.step == last][0]
        assert a.modelmap_bits_per_byte[a.pairs.index((0, k))] == pytest.approx(mm.bits_per_byte, rel=1e-9)
        assert a.sampled_directed[0, k] == pytest.approx(sampled.bits_per_byte, rel=1e-9)
    assert np.all(np.diag(a.sampled_directed) == 0)
    sym = [(a.sampled_directed[i, j] + a.sampled_directed[j, i]) / 2 for i, j in a.pairs]
    assert np.allclose(a.sampled_bits_per_byte, sym)
    assert a.spearman == pytest.approx(mc.spearman(a.modelmap_bits_per_byte, a.sampled_bits_per_byte))
    # along the trajectories: the steps where both estimators were stored (the final third + the last)
    traj = agreement.along_trajectories(store, outcome)
    assert {t.method for t in traj} == set(by_method)
    for t in traj:
        rows = store.get_kl(by_method[t.method].run_id)
        assert set(t.steps) == {r.step for r in rows if r.estimator == "sampled"} and last in t.steps
