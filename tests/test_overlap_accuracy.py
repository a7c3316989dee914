"""Overlap accuracy 1 − TV(estimate, truth) (issue 25 item 4): closed forms for the pure functions, and the
recovery leaderboard carrying it beside the KL ratios on a finished smoke benchmark."""

from __future__ import annotations

import numpy as np
import pytest

from lldmix_core import mathcore as mc


@pytest.mark.parametrize("p,q,tv", [
    ([0.2, 0.3, 0.5], [0.5, 0.3, 0.2], 0.3),  # ½ (0.3 + 0 + 0.3)
    ([0.5, 0.5], [1.0, 0.0], 0.5),
    ([1.0, 0.0, 0.0], [0.0, 0.5, 0.5], 1.0),  # disjoint supports
    ([0.25] * 4, [0.25] * 4, 0.0),
])
def test_total_variation_and_overlap_closed_forms(p, q, tv):
    # mutation tried: dropping the ½ in total_variation -> 0.6 instead of 0.3 and this fails
    assert mc.total_variation(p, q) == pytest.approx(tv, abs=1e-12)
    assert mc.total_variation(q, p) == pytest.approx(tv, abs=1e-12)  # symmetric
    assert mc.overlap_accuracy(p, q) == pytest.approx(1.0 - tv, abs=1e-12)
    assert mc.overlap_accuracy(p, q) == pytest.approx(float(np.minimum(p, q).sum()), abs=1e-12)  # Σ min on the simplex


def test_overlap_matches_sum_of_minima_on_random_mixtures():
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(2, 12))
        p, q = rng.dirichlet(np.ones(k)), rng.dirichlet(np.full(k, 0.3))
        assert mc.overlap_accuracy(p, q) == pytest.approx(float(np.minimum(p, q).sum()), abs=1e-12)
        assert 0.0 <= mc.overlap_accuracy(p, q) <= 1.0


def test_overlap_refuses_vectors_of_different_lengths():
    with pytest.raises(ValueError, match="same length"):
        mc.overlap_accuracy([0.5, 0.5], [1.0, 0.0, 0.0])


@pytest.mark.parametrize("steps,weights,total,expected", [
    ([0, 2], [[1.0, 0.0], [0.0, 1.0]], 10, [0.2, 0.8]),  # 2 steps of the first, 8 of the second
    ([0, 2, 10], [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], 10, [0.2, 0.8]),  # the final evaluation's counts for nothing
    ([16], [[0.3, 0.7]], 16, [0.3, 0.7]),  # a fixed recipe stored at its only evaluation: in force since 0
    ([4, 5], [[1.0, 0.0], [0.0, 1.0]], 10, [0.5, 0.5]),  # the first vector counts from step 0
])
def test_time_averaged_weights_closed_forms(steps, weights, total, expected):
    # mutation tried: counting each vector once instead of by its steps in force -> [0.5, 0.5] for the first case
    assert mc.time_averaged_weights(steps, np.array(weights), total) == pytest.approx(expected, abs=1e-12)


def test_time_averaged_weights_refuses_unordered_steps():
    with pytest.raises(ValueError, match="increase strictly"):
        mc.time_averaged_weights([3, 3], np.eye(2), 10)


def test_the_leaderboard_row_carries_the_median_overlap():
    """Independent expectation: the median of the pairs' overlaps (odd count: the middle one). Mutation
    tried: taking the mean instead -> 0.5 instead of 0.7 and this fails."""
    from lldmix_core.benchmark.leaderboard import PairResult, leaderboard
    from lldmix_core.estimators import PAPER

    overlaps = [0.9, 0.7, -0.1]  # not real overlaps: values chosen so that mean and median differ
    pairs = [PairResult("c", f"t{i}", 0, i, ("a", "b"), np.array([0.6, 0.4]), 0.02, {}, {PAPER: 0.5 + i}, "abc", "h",
                        {}, {}, i, {PAPER: o}) for i, o in enumerate(overlaps)]
    row = next(r for r in leaderboard(pairs) if r.estimator == PAPER)
    assert row.median_overlap == pytest.approx(0.7, abs=1e-12)
    assert row.median_overlap_ci95[0] <= 0.7 <= row.median_overlap_ci95[1]


def test_recovery_smoke_leaderboard_scores_overlap_against_the_truth(recovery_smoke_home):
    """On the finished smoke benchmark: every pair's overlap is 1 − ½ Σ |estimate − truth| recomputed here
    from the stored estimate and the benchmark's truth, and the document shows the median overlap beside the
    median ratio. Mutation tried: overlap of the estimate with uniform instead of the truth -> fails."""
    from conftest import fresh_home

    from lldmix_core.benchmark.leaderboard import collect, leaderboard
    from lldmix_core.benchmark.report import render
    from lldmix_core.benchmark.suite import expand, load_benchmark

    from conftest import ROOT

    b = load_benchmark(ROOT / "runs/recovery-smoke.yaml")
    cells = expand(b)
    with fresh_home(recovery_smoke_home) as (_, store):
        pairs = collect(store, cells)
    assert pairs
    truths = {(c.cell, c.truth): c.weights for c in cells}
    for p in pairs:
        truth = np.array([truths[(p.cell, p.truth)][d] for d in p.domains])
        assert set(p.overlaps) == set(p.estimates)
        for name, est in p.estimates.items():
            assert p.overlaps[name] == pytest.approx(1.0 - 0.5 * float(np.abs(est - truth).sum()), abs=1e-12)
    rows = leaderboard(pairs)
    for r in rows:
        have = [p.overlaps[r.estimator] for p in pairs if r.estimator in p.overlaps]
        assert r.median_overlap == pytest.approx(float(np.median(have)), abs=1e-12)
    doc = render(b, cells, pairs, "test")
    assert "median overlap accuracy [95 % CI]" in doc
    paper_line = next(line for line in doc.splitlines() if line.startswith("| `" + rows[0].estimator + "`"))
    assert f"{rows[0].median_overlap:.3f}" in paper_line
