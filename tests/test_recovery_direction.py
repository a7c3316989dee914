"""§4.2 in the paper's direction: KL(uniform ‖ Table-4 CodeNanoGPT truth) = 0.819 nats."""

from __future__ import annotations

import numpy as np
import pytest

from lldmix_core import mathcore as mc

# The paper's Table 4 "Code" column (17 Pile Uncopyrighted domains), typed from the paper text.
CODE = [0.0915, 0.0127, 0.00143, 0.00745, 0.0625, 0.202, 0.0222, 0.0165, 0.00306, 0.00388, 0.185, 0.0314,
        0.147, 0.137, 0.0373, 0.0235, 0.0156]


def test_paper_0819_is_kl_uniform_to_truth():
    truth = np.array(CODE) / np.sum(CODE)  # the column sums to 0.99998 (rounding): renormalise
    uniform = np.full(17, 1 / 17)
    forward, reverse = mc.weight_recovery(truth, uniform)
    assert forward == pytest.approx(0.819, abs=5e-4)  # the paper's number, its direction
    assert reverse == pytest.approx(0.5745, abs=5e-4)  # the other direction: not the paper's
    # independent expectation: KL(u ‖ t) = Σ u log(u/t) = −log 17 − mean(log t)
    assert forward == pytest.approx(-np.log(17) - np.mean(np.log(truth)), rel=1e-12)


def test_report_recovery_rows_carry_both_directions():
    from lldmix_core.report import SpecOutcome, recovery

    fields = SpecOutcome.__dataclass_fields__
    kwargs = {k: None for k in fields}
    kwargs.update(truth={"a": 0.5, "b": 0.3, "c": 0.2}, recipes={0: {"a": 0.2, "b": 0.3, "c": 0.5}})
    row = recovery(SpecOutcome(**kwargs))[0]
    t, u, e = np.array([0.5, 0.3, 0.2]), np.full(3, 1 / 3), np.array([0.2, 0.3, 0.5])
    assert row["kl_uniform_truth"] == pytest.approx(mc.kl_categorical(u, t))
    assert row["kl_estimate_truth"] == pytest.approx(mc.kl_categorical(e, t))
    assert row["kl_truth_uniform"] == pytest.approx(mc.kl_categorical(t, u))
    assert row["kl_truth_estimate"] == pytest.approx(mc.kl_categorical(t, e))
