"""mathcore.stats (paired differences over seeds) and the model map's pooled clipping threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lldmix_core import mathcore as mc


def test_t_quantile_matches_scipy_or_known_values():
    known = {1: 12.7062047, 4: 2.7764451, 9: 2.2621572, 30: 2.0422725, 60: 2.0002978, 120: 1.9799304}
    for dof, v in known.items():
        assert mc.t_quantile_975(dof) == pytest.approx(v, abs=2e-5)
    scipy_stats = pytest.importorskip("scipy.stats")
    for dof in (1, 2, 5, 17, 31, 45, 200):
        assert mc.t_quantile_975(dof) == pytest.approx(scipy_stats.t.ppf(0.975, dof), abs=2e-5)


def test_paired_summary_hand_computed():
    ref = np.array([10.0, 12.0, 9.0, 11.0, 13.0])
    meth = ref + np.array([-1.0, -2.0, 0.5, -1.5, -1.0])  # d: mean −1, sd sqrt(0.875)
    s = mc.paired_summary(meth, ref)
    sd = math.sqrt(((0) ** 2 + 1 + 1.5**2 + 0.5**2 + 0) / 4)
    se = sd / math.sqrt(5)
    assert s.n == 5 and s.wins == 4 and s.mean_diff == pytest.approx(-1.0)
    assert s.se == pytest.approx(se)
    assert (s.lo, s.hi) == pytest.approx((-1 - 2.7764451 * se, -1 + 2.7764451 * se), abs=1e-6)


def test_t_interval_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=7), rng.normal(size=7)
    s = mc.paired_summary(a, b)
    d = a - b
    lo, hi = scipy_stats.t.interval(0.95, d.size - 1, loc=d.mean(), scale=scipy_stats.sem(d))
    assert (s.lo, s.hi) == pytest.approx((lo, hi), abs=1e-5)


def test_bootstrap_interval_covers_and_is_seeded():
    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 1.0, size=400)
    s1 = mc.paired_summary(d, np.zeros_like(d), interval="bootstrap", seed=3)
    s2 = mc.paired_summary(d, np.zeros_like(d), interval="bootstrap", seed=3)
    assert (s1.lo, s1.hi) == (s2.lo, s2.hi)
    t = mc.paired_summary(d, np.zeros_like(d))
    assert s1.lo == pytest.approx(t.lo, abs=0.02) and s1.hi == pytest.approx(t.hi, abs=0.02)


def test_paired_difference_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="equal lengths"):
        mc.paired_difference([1, 2], [1, 2, 3])


def test_pooled_clip_threshold_is_one_global_quantile():
    rng = np.random.default_rng(0)
    L = rng.normal(-500, 50, size=(4, 300))
    L[3] -= 200  # one model far lower: a per-pair threshold would differ from the pooled one
    K, t = mc.kl_matrix_pooled_clip(L, 0.02)
    assert t == pytest.approx(np.quantile(L.ravel(), 0.02))
    # reference: clip by hand with that one threshold, then 0.5·var of each pair's difference
    C = np.maximum(L, t)
    for i in range(4):
        for j in range(4):
            d = C[i] - C[j]
            assert K[i, j] == pytest.approx(0.5 * np.mean((d - d.mean()) ** 2), rel=1e-9, abs=1e-9)
            assert mc.kl_pair_at_threshold(L[i], L[j], t) == pytest.approx(K[i, j], rel=1e-9, abs=1e-9)
    # a per-pair threshold (today's kl_pair with clip) gives a different number for the low model
    assert mc.kl_pair(L[0], L[3], 0.02) != pytest.approx(K[0, 3], rel=1e-6)


def test_clip_zero_is_bit_identical_to_the_unclipped_map():
    rng = np.random.default_rng(2)
    L = rng.normal(-300, 30, size=(5, 50))
    K, t = mc.kl_matrix_pooled_clip(L, 0.0)
    assert t is None and np.array_equal(K, mc.kl_matrix(L, 0.0))
    assert mc.clip_threshold(L, 0.0) is None
    assert mc.kl_pair_at_threshold(L[0], L[1], None) == mc.kl_pair(L[0], L[1], 0.0)


def test_sampled_estimate_and_units():
    d = mc.per_sample_log_ratio([-10.0, -12.0, -11.0], [-12.0, -13.0, -14.0])  # 2, 1, 3 nats/text
    bpb = mc.to_bits_per_byte(d, 4.0)
    m, se = mc.sampled_kl_estimate(bpb)
    assert m == pytest.approx(2 / math.log(2) / 4)
    assert se == pytest.approx(1 / math.sqrt(3) / math.log(2) / 4)


def test_spearman_closed_forms_and_ties():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mc.spearman(x, x**3) == pytest.approx(1.0)  # any increasing map
    assert mc.spearman(x, -np.exp(x)) == pytest.approx(-1.0)
    # no ties: 1 − 6 Σd² / (n(n²−1)); ranks of y = 2,1,4,3,5 → Σd² = 4 → 1 − 24/120 = 0.8
    assert mc.spearman(x, np.array([20.0, 10.0, 40.0, 30.0, 50.0])) == pytest.approx(0.8)
    # ties share the mean rank: [1, 2, 2, 3] → ranks 1, 2.5, 2.5, 4
    assert list(mc.average_ranks(np.array([1.0, 2.0, 2.0, 3.0]))) == [1.0, 2.5, 2.5, 4.0]
    assert math.isnan(mc.spearman(x[:2], x[:2])) and math.isnan(mc.spearman(x, np.ones(5)))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=40), rng.normal(size=40)
    b[:10] = b[0]  # ties
    scipy_stats = pytest.importorskip("scipy.stats")
    assert mc.spearman(a, b) == pytest.approx(scipy_stats.spearmanr(a, b).statistic, abs=1e-12)
    assert mc.spearman(a, b) == pytest.approx(mc.spearman(b, a))
