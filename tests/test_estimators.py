"""Issue 13's estimator variants (mathcore) against closed forms and slow references."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from lldmix_core import mathcore as mc
from lldmix_core.errors import UserError
from lldmix_core.recipes_phased import (
    check_phased,
    export_phased,
    load_phased,
    phased_from_arrays,
    phased_from_json,
    phased_to_json,
    weights_at,
)

STEPS_500 = mc.lld_schedule(500)  # [0, 1, 2, 4, 8, 16, 32, 50, 100, …, 450]


def _simplex_argmin(objective, k):
    res = minimize(lambda z: objective(np.exp(z) / np.exp(z).sum()), np.zeros(k), method="Nelder-Mead",
                   options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20000, "maxfev": 40000})
    return np.exp(res.x) / np.exp(res.x).sum()


# ------------------------------------------------------------------ aggregation

def test_weighted_geometric_is_the_minimiser_of_weighted_summed_kl():
    rng = np.random.default_rng(3)
    W = rng.dirichlet(np.ones(4), size=6)
    c = np.array([0.1, 0.0, 3.0, 1.0, 0.5, 2.0])
    numeric = _simplex_argmin(lambda a: sum(ci * mc.kl_categorical(a, w) for ci, w in zip(c, W)), 4)
    assert np.allclose(mc.aggregate_weighted_geometric(W, c), numeric, atol=1e-4)
    # and it is not the plain geometric mean: the step weights matter
    assert not np.allclose(mc.aggregate_weighted_geometric(W, c), mc.aggregate_geometric(W), atol=1e-3)


def test_weighted_geometric_closed_form_and_zero_handling():
    W = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    # the zero is at a step with weight 0: ignored, so the result is step 2
    assert np.allclose(mc.aggregate_weighted_geometric(W, [0.0, 1.0]), W[1])
    # counted zero → that domain gets 0; the rest ∝ 0.5^(1/4)·0.2^(3/4), 0.5^(1/4)·0.3^(3/4)
    expect = np.array([0.5 ** 0.25 * 0.2 ** 0.75, 0.5 ** 0.25 * 0.3 ** 0.75, 0.0])
    assert np.allclose(mc.aggregate_weighted_geometric(W, [1.0, 3.0]), expect / expect.sum())
    with pytest.raises(ValueError, match="step_weights"):
        mc.aggregate_weighted_geometric(W, [0.0, 0.0])
    with pytest.raises(ValueError, match="step_weights"):
        mc.aggregate_weighted_geometric(W, [1.0])


def test_weighted_geometric_of_softmaxes_is_softmax_of_weighted_mean_delta():
    # with one τ and prior, Π_s softmax(Δ_s/τ)^{c_s} ∝ softmax(Σ_s c_s Δ_s / τ) (c normalised)
    rng = np.random.default_rng(5)
    D = rng.normal(scale=0.5, size=(9, 7))
    c = mc.token_share_step_weights(STEPS_500[:9], 120)
    W = np.array([mc.lld_weights(d, 0.4) for d in D])
    assert np.allclose(mc.aggregate_weighted_geometric(W, c), mc.lld_weights(c @ D / c.sum(), 0.4))


def test_progress_and_token_share_step_weights():
    c = mc.progress_step_weights(STEPS_500, 500)
    assert np.allclose(c, np.array(STEPS_500) / 500) and c[0] == 0
    share = mc.token_share_step_weights(STEPS_500, 500)
    gaps = np.diff(np.append(STEPS_500, 500)) / 500  # 1,1,2,4,8,16,18,50,…,50 steps
    assert np.allclose(share, gaps) and share.sum() == pytest.approx(1.0)
    assert share[-1] == pytest.approx(0.1) and share[0] == pytest.approx(0.002)
    # a batch twice as large from step 250 on: the late steps carry 2× the tokens
    tok = np.where(np.arange(500) >= 250, 2.0, 1.0)
    share2 = mc.token_share_step_weights([0, 250], 500, tok)
    assert np.allclose(share2, [250 / 750, 500 / 750])
    with pytest.raises(ValueError, match="steps"):
        mc.token_share_step_weights([0, 600], 500)
    with pytest.raises(ValueError, match="steps"):
        mc.progress_step_weights([0], 500)


def test_late_only_is_the_geometric_mean_of_the_late_steps():
    rng = np.random.default_rng(4)
    W = rng.dirichlet(np.ones(5), size=len(STEPS_500))
    mask = mc.late_step_mask(STEPS_500, 500, 0.5)
    assert [s for s, m in zip(STEPS_500, mask) if m] == [250, 300, 350, 400, 450]
    assert np.allclose(mc.aggregate_late(W, STEPS_500, 500, 0.5), mc.aggregate_geometric(W[mask]))
    assert np.allclose(mc.aggregate_late(W, STEPS_500, 500, 0.0), mc.aggregate_geometric(W))
    with pytest.raises(ValueError, match="from_fraction"):
        mc.aggregate_late(W, STEPS_500, 500, 1.0)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8), st.integers(2, 6), st.integers(0, 10_000), st.floats(0.01, 100))
def test_weighted_geometric_properties(s, k, seed, scale):
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.ones(k), size=s)
    c = rng.uniform(0.1, 1.0, size=s)
    a = mc.aggregate_weighted_geometric(W, c)
    assert np.all(a >= 0) and a.sum() == pytest.approx(1.0)
    assert np.allclose(a, mc.aggregate_weighted_geometric(W, scale * c))  # only the ratios of c matter
    perm = rng.permutation(s)
    assert np.allclose(a, mc.aggregate_weighted_geometric(W[perm], c[perm]))
    assert np.allclose(mc.aggregate_weighted_geometric(W, np.ones(s)), mc.aggregate_geometric(W))


# ------------------------------------------------------------------ temperature

def test_tau_from_spread():
    d = np.array([0.3, -1.2, 2.0, 0.0])
    assert mc.tau_from_spread(d) == pytest.approx(3.2) == mc.resolve_tau("auto", d)
    assert mc.tau_from_spread(d, "std") == pytest.approx(math.sqrt(np.mean((d - d.mean()) ** 2)))
    assert mc.tau_from_spread(np.zeros(3)) == 1.0
    with pytest.raises(ValueError, match="spread"):
        mc.tau_from_spread(d, "iqr")


def test_auto_tau_for_adjusted_uses_the_adjusted_scores():
    # G_n = diag(1.9, 0.1) (trace/K = 1): G_n⁻¹Δ = (Δ_1/1.9, Δ_2/0.1) — spread far larger than Δ's
    G = np.diag([1.9, 0.1])
    delta = np.array([0.2, 0.1])
    res = mc.conditioned_gram_solve(G, delta, ridge=0.0)
    assert np.allclose(res.scores, [0.2 / 1.9, 1.0])
    assert mc.tau_from_spread(res.scores) == pytest.approx(1.0 - 0.2 / 1.9)
    assert mc.tau_from_spread(delta) == pytest.approx(0.1)


def test_annealed_tau_values_at_known_steps():
    assert mc.annealed_tau(0, 0, 400, 2.0, 0.5) == pytest.approx(2.0)
    assert mc.annealed_tau(200, 0, 400, 2.0, 0.5) == pytest.approx(1.0)  # √(2 · 0.5)
    assert mc.annealed_tau(100, 0, 400, 2.0, 0.5) == pytest.approx(2.0 * 0.25 ** 0.25)
    assert mc.annealed_tau(400, 0, 400, 2.0, 0.5) == pytest.approx(0.5)
    assert mc.annealed_tau(999, 0, 400, 2.0, 0.5) == pytest.approx(0.5)  # clamped after the end
    assert mc.annealed_tau(200, 0, 400, 2.0, 0.5, "linear") == pytest.approx(1.25)
    taus = mc.annealed_taus(STEPS_500, 4.0, 1.0)
    assert taus[0] == pytest.approx(4.0) and taus[-1] == pytest.approx(1.0)
    i250 = STEPS_500.index(250)
    assert taus[i250] == pytest.approx(4.0 * 0.25 ** (250 / 450))
    assert np.all(np.diff(taus) < 0)
    with pytest.raises(ValueError, match="shape"):
        mc.annealed_tau(1, 0, 2, 1.0, 0.5, "cosine")
    with pytest.raises(ValueError, match="tau_start"):
        mc.annealed_tau(1, 0, 2, 0.0, 0.5)


# ------------------------------------------------------------------ conditioned Gram

def _random_gram(eigs, seed):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.normal(size=(len(eigs), len(eigs))))
    return U, U @ np.diag(eigs) @ U.T


def test_gcv_ridge_has_the_known_minimiser():
    # b_i² = s²(σ_i + λ*) makes λ* the unique GCV minimiser (Cauchy–Schwarz), with
    # GCV(λ*) = K s² / Σ 1/(σ_i + λ*)
    sig = np.array([2.5, 1.0, 0.4, 0.08, 0.02])  # mean 0.8: normalisation scales by 1/0.8
    U, A = _random_gram(sig, 5)
    lam_star, s2 = 0.037, 0.3
    b = np.sqrt(s2 * (sig + lam_star)) * np.array([1, -1, 1, 1, -1])
    y = U @ b
    lam = mc.gcv_ridge(A, y)
    assert lam == pytest.approx(lam_star, rel=1e-5)
    assert mc.gcv_score(sig, b, lam) == pytest.approx(5 * s2 / np.sum(1 / (sig + lam_star)), rel=1e-9)
    # through the normalised solve: the Gram is divided by its mean eigenvalue 0.8, so λ scales by 1/0.8
    res = mc.conditioned_gram_solve(A, y, ridge="gcv", rescale=False)
    assert res.ridge == pytest.approx(lam_star / 0.8, rel=1e-5)
    assert np.allclose(res.scores, np.linalg.solve(A / 0.8 + res.ridge * np.eye(5), y))


def test_gcv_ridge_matches_a_brute_force_grid_of_the_formula():
    rng = np.random.default_rng(7)
    J = rng.normal(size=(6, 4))
    G = J @ J.T + 1e-6 * np.eye(6)
    y = G @ rng.dirichlet(np.ones(6)) + 0.05 * rng.normal(size=6)
    lam = mc.gcv_ridge(G, y)
    grid = np.geomspace(1e-6, 1e3, 20001) * np.linalg.eigvalsh(G).max()

    def gcv_direct(l):  # K‖(I − H)y‖² / tr(I − H)², H = G(G + λI)⁻¹, no eigenbasis
        H = G @ np.linalg.inv(G + l * np.eye(6))
        R = np.eye(6) - H
        return 6 * float(np.sum((R @ y) ** 2)) / np.trace(R) ** 2

    vals = np.array([gcv_direct(l) for l in grid[::20]])
    best = grid[::20][int(np.argmin(vals))]
    assert gcv_direct(lam) <= vals.min() + 1e-12
    assert lam == pytest.approx(best, rel=0.05)


def test_ridge_as_fraction_of_max_eigenvalue_and_condition_number():
    sig = np.array([3.0, 0.9, 0.1, 0.0])  # singular; mean eigenvalue 1 already
    U, G = _random_gram(sig, 1)
    delta = np.array([0.1, -0.2, 0.3, 0.05])
    res = mc.conditioned_gram_solve(G, delta, ridge="max-eig", ridge_fraction=0.01)
    assert res.ridge == pytest.approx(0.03)
    assert res.condition_number == pytest.approx((3.0 + 0.03) / 0.03)
    assert res.condition_number_unridged == math.inf
    assert np.allclose(res.scores, 1.03 * np.linalg.solve(G + 0.03 * np.eye(4), delta))


def test_diagonal_normalisation_is_a_per_domain_ridge():
    rng = np.random.default_rng(2)
    J = rng.normal(size=(4, 7)) * np.array([[10.0], [1.0], [0.1], [3.0]])  # very unequal gradient sizes
    G = J @ J.T
    delta = np.array([0.2, -0.1, 0.4, 0.0])
    Gn = G / (np.trace(G) / 4)
    lam = 0.05
    res = mc.conditioned_gram_solve(G, delta, normalisation="diagonal", ridge=lam, rescale=False)
    assert np.allclose(res.scores, np.linalg.solve(Gn + lam * np.diag(np.diag(Gn)), delta))
    C = Gn / np.sqrt(np.outer(np.diag(Gn), np.diag(Gn)))
    assert res.condition_number == pytest.approx(np.linalg.cond(C + lam * np.eye(4)))
    assert res.condition_number < mc.conditioned_gram_solve(G, delta, ridge=lam).condition_number
    # without ridge both normalisations solve the same system G_n x = Δ
    assert np.allclose(mc.conditioned_gram_solve(G, delta, "diagonal", 0.0).scores, np.linalg.solve(Gn, delta))


@pytest.mark.parametrize("normalisation", ["trace", "diagonal"])
@pytest.mark.parametrize("ridge", [0.0, 0.5, 100.0, "max-eig", "gcv"])
def test_rescaled_solve_of_a_multiple_of_identity_is_delta(normalisation, ridge):
    delta = np.array([0.3, -1.2, 2.0, 0.0])
    for c in (1e-5, 1.0, 1e5):
        res = mc.conditioned_gram_solve(c * np.eye(4), delta, normalisation, ridge)
        assert np.allclose(res.scores, delta) and res.condition_number == pytest.approx(1.0)


def test_bad_gram_inputs():
    with pytest.raises(ValueError, match="normalisation"):
        mc.conditioned_gram_solve(np.eye(2), [0.0, 1.0], normalisation="max")
    with pytest.raises(ValueError, match="ridge"):
        mc.conditioned_gram_solve(np.eye(2), [0.0, 1.0], ridge=-1.0)
    with pytest.raises(ValueError, match="gram"):
        mc.conditioned_gram_solve(np.eye(3), [0.0, 1.0])


# ------------------------------------------------------------------ calibrated Δ

def test_calibrated_delta():
    l_t = np.array([-1.0, -2.0, -0.5])
    l_r = np.array([-1.2, -1.9, -0.5])
    base = np.array([[-5.0, -5.5, -4.0], [-3.0, -3.1, -1.0]])  # two schedule steps
    assert np.allclose(mc.calibrated_delta(l_t, l_r), [0.2, -0.1, 0.0])
    out = mc.calibrated_delta(l_t, l_r, base)
    # (ℓ_t − ℓ_b) − (ℓ_r − ℓ_b) at every step, written out
    assert np.allclose(out, (l_t - base) - (l_r - base)) and out.shape == (2, 3)
    with pytest.raises(ValueError, match="l_reference"):
        mc.calibrated_delta(l_t, l_r[:2])
    with pytest.raises(ValueError, match="l_base"):
        mc.calibrated_delta(l_t, l_r, np.array([np.nan, 0, 0]))


# ------------------------------------------------------------------ two-stage recipe

def _block_weights(split, s=len(STEPS_500), seed=0):
    rng = np.random.default_rng(seed)
    early = np.array([0.6, 0.1, 0.1, 0.1, 0.1])
    late = np.array([0.1, 0.1, 0.2, 0.3, 0.3])
    rows = [rng.dirichlet(400 * (early if i < split else late)) for i in range(s)]
    return np.array(rows)


@pytest.mark.parametrize("split", [3, 7, 12])
def test_best_split_finds_the_true_block_boundary(split):
    W = _block_weights(split, seed=split)
    D = mc.js_divergence_matrix(W)
    assert np.allclose(D, mc.js_distance_matrix(W) ** 2)
    assert mc.best_split(D) == split


def test_best_split_on_an_exact_block_matrix():
    D = np.ones((6, 6))
    D[:2, :2] = 0
    D[2:, 2:] = 0
    assert mc.within_block_scatter(D, 2) == 0.0
    # split 3: early {0, 1, 2} holds two cross pairs (0–2, 1–2), over 3 steps; late {3, 4, 5} none
    assert mc.within_block_scatter(D, 3) == pytest.approx(2 / 3)
    # split 1: early {0} none; late {1..5} holds 4 cross pairs (1 with 2..5), over 5 steps
    assert mc.within_block_scatter(D, 1) == pytest.approx(4 / 5)
    assert mc.best_split(D) == 2
    with pytest.raises(ValueError, match="min_block"):
        mc.best_split(D, min_block=4)


def test_two_stage_phases():
    W = _block_weights(9)
    phases = mc.two_stage_phases(W, STEPS_500, 500)
    assert [u for u, _ in phases] == [pytest.approx(STEPS_500[9] / 500), 1.0]
    assert np.allclose(phases[0][1], mc.aggregate_geometric(W[:9]))
    assert np.allclose(phases[1][1], mc.aggregate_geometric(W[9:]))
    arith = mc.two_stage_phases(W, STEPS_500, 500, aggregation="arithmetic")
    assert np.allclose(arith[1][1], W[9:].mean(axis=0))


# ------------------------------------------------------------------ phased recipes

DOMAINS = ["Python", "C++", "JSON"]


def _recipe():
    return phased_from_arrays("r", "two-stage-lld", DOMAINS,
                              [(0.3, np.array([0.5, 0.25, 0.25])), (1.0, np.array([0.2, 0.2, 0.6]))],
                              {"switch_step": 150, "seed": 0})


def test_phased_json_round_trip(tmp_path):
    r = _recipe()
    assert phased_from_json(phased_to_json(r)) == r
    path = tmp_path / "r.json"
    export_phased(r, path)
    assert load_phased(path) == r
    assert json.loads(path.read_text())["phases"][0]["until"] == 0.3
    assert weights_at(r, 0.0) == {"Python": 0.5, "C++": 0.25, "JSON": 0.25}
    assert weights_at(r, 0.3)["JSON"] == 0.6 and weights_at(r, 1.0)["JSON"] == 0.6


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["phases"].pop(), "must be 1.0"),
    (lambda r: r["phases"][0].update(until=1.0), r"phases\[1\]\.until"),
    (lambda r: r["phases"][0].update(until=0.0), r"phases\[0\]\.until"),
    (lambda r: r["phases"][1]["weights"].update(JSON=0.7), r"phases\[1\]\.weights: weights sum"),
    (lambda r: r["phases"][1]["weights"].pop("JSON"), r"phases\[1\]\.weights"),
    (lambda r: r["phases"][0].update(extra=1), r"phases\[0\] must have exactly"),
    (lambda r: r.update(phases=[]), "'phases'"),
    (lambda r: r.update(name=""), "'name'"),
])
def test_phased_validation(mutate, message):
    r = _recipe()
    mutate(r)
    with pytest.raises(UserError, match=message):
        check_phased(r)


def test_phased_bad_json(tmp_path):
    with pytest.raises(UserError, match="not valid JSON"):
        phased_from_json("{")
    with pytest.raises(UserError, match="cannot read"):
        load_phased(tmp_path / "missing.json")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.01, 0.99), min_size=0, max_size=4, unique=True), st.integers(0, 10_000))
def test_phased_round_trip_property(cuts, seed):
    rng = np.random.default_rng(seed)
    untils = sorted(cuts) + [1.0]
    r = phased_from_arrays("p", "m", DOMAINS, [(u, rng.dirichlet(np.ones(3))) for u in untils])
    back = phased_from_json(phased_to_json(r))
    assert back == r
    for u, ph in zip([0.0] + untils[:-1], back["phases"]):
        assert weights_at(back, u) == ph["weights"]


# ------------------------------------------------------------------ recovery metrics

def test_recovery_ratio_closed_form():
    truth = np.array([0.5, 0.3, 0.2])
    est = np.array([0.4, 0.4, 0.2])
    num = 0.4 * math.log(0.4 / 0.5) + 0.4 * math.log(0.4 / 0.3)
    den = sum(x * math.log(x / t) for x, t in zip([1 / 3] * 3, truth))
    assert mc.recovery_ratio(est, truth) == pytest.approx(num / den)
    assert mc.recovery_ratio(truth, truth) == 0.0
    assert mc.recovery_ratio(np.full(3, 1 / 3), truth) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="undefined"):
        mc.recovery_ratio(est, np.full(3, 1 / 3))
    assert np.allclose(mc.recovery_ratios([est, truth], [truth, truth]), [num / den, 0.0])


def test_recovery_summary_and_intervals():
    r = np.array([0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.9, 1.3])
    s = mc.recovery_summary(r)
    assert s["n"] == 10 and s["median"] == pytest.approx(0.475) and s["fraction_below_1"] == 0.9
    assert s["meets_goal"] is True
    assert s["median_ci95"] == (0.3, 0.9)  # n = 10: (x_(2), x_(9)), coverage 1 − 2·56/1024·… ≥ 95 %
    lo, hi = mc.wilson_interval(9, 10)
    assert lo == pytest.approx(0.5958, abs=1e-4) and hi == pytest.approx(0.9821, abs=1e-4)
    assert mc.median_interval([1.0, 2.0, 3.0]) == (-math.inf, math.inf)  # too few for 95 %
    assert mc.recovery_summary([0.4, 0.6, 1.2])["meets_goal"] is False


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6), st.integers(0, 10_000), st.floats(1e-3, 1e3), st.sampled_from(["trace", "diagonal"]))
def test_conditioned_solve_ignores_the_gram_scale(k, seed, c, normalisation):
    rng = np.random.default_rng(seed)
    J = rng.normal(size=(k, k + 2))
    G = J @ J.T
    delta = rng.normal(size=k)
    a = mc.conditioned_gram_solve(G, delta, normalisation, "gcv")
    b = mc.conditioned_gram_solve(c * G, delta, normalisation, "gcv")
    assert a.ridge == pytest.approx(b.ridge, rel=1e-4)
    assert np.allclose(a.scores, b.scores, rtol=1e-4, atol=1e-8)
    assert a.condition_number <= a.condition_number_unridged * (1 + 1e-9)


@settings(max_examples=100, deadline=None)
@given(st.floats(1e-3, 1e3), st.floats(1e-3, 1e3), st.sampled_from(["geometric", "linear"]))
def test_annealed_taus_stay_between_and_move_one_way(t0, t1, shape):
    taus = mc.annealed_taus(STEPS_500, t0, t1, shape)
    lo, hi = min(t0, t1), max(t0, t1)
    assert np.all(taus >= lo * (1 - 1e-12)) and np.all(taus <= hi * (1 + 1e-12))
    d = np.diff(taus) * np.sign(t1 - t0)
    assert np.all(d >= -1e-12 * hi)
