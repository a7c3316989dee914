"""One vocabulary for aggregation (issue 22, item 4): a spec's lld.aggregation names an entry of the
estimator registry, `geometric` (every spec's default) being the registry's `paper`, and the engine computes
every aggregation through that entry. The expected recipe is written out here from Δ_t and τ by hand.

Mutations seen caught: the alias pointing at `arithmetic`; the spec accepting `calibrated` (it needs a
reference target a spec has not); `paper` computing the arithmetic mean."""

from __future__ import annotations

import numpy as np
import pytest

from lldmix_core.estimators import ESTIMATORS, Pass1, aggregation_estimator, aggregation_names
from lldmix_core.spec import LLDSpec


def test_geometric_is_the_paper_entry_and_every_other_name_is_its_own():
    assert aggregation_estimator("geometric") is ESTIMATORS["paper"]
    for name in aggregation_names():
        assert aggregation_estimator(name).name == ("paper" if name == "geometric" else name)
    assert "calibrated" not in aggregation_names() and "geometric" in aggregation_names()
    with pytest.raises(KeyError):
        aggregation_estimator("harmonic")


def test_the_spec_keeps_its_spelling_so_hashes_stay():
    assert LLDSpec().aggregation == "geometric"  # the default as written (spec_hash dumps it)
    assert LLDSpec(aggregation="paper").aggregation == "paper"
    with pytest.raises(ValueError, match="reference target"):
        LLDSpec(aggregation="calibrated")


def test_the_default_is_the_normalised_geometric_mean_of_pass_1s_softmax_weights():
    delta = np.array([[0.2, -0.1, 0.0], [0.4, 0.1, -0.3]])  # Δ_t at two schedule steps, K = 3
    tau, prior = 0.5, np.array([0.5, 0.25, 0.25])
    p = Pass1(np.array([0, 10]), 100, delta, tau, prior)
    alpha = prior * np.exp(delta / tau)
    alpha /= alpha.sum(axis=1, keepdims=True)  # softmax(Δ_t/τ)·prior per step
    geo = np.exp(np.log(alpha).mean(axis=0))
    assert aggregation_estimator("geometric").fn(p) == pytest.approx(geo / geo.sum(), rel=1e-12)
    assert aggregation_estimator("arithmetic").fn(p) == pytest.approx(alpha.mean(axis=0), rel=1e-12)
