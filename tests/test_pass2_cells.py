"""scripts/recovery_pass2.py's pass-2 cells keep what makes their targets and baselines the benchmark's own:
size, budget, base and twin targets (so uniform, the oracle and the targets are found, not retrained), one
cell per seed when the recipe differs by seed, and a clear error for a truth the cell does not train."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import ROOT
from lldmix_core.benchmark.suite import expand, load_benchmark
from lldmix_core.errors import UserError


def _script():
    spec = importlib.util.spec_from_file_location("recovery_pass2", ROOT / "scripts" / "recovery_pass2.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _pairs(cell: str, truth: str, seeds, domains, rng):
    """Stand-ins for finished pass-1 pairs: a per-seed recipe on the simplex for `auto-range`."""
    return [SimpleNamespace(cell=cell, truth=truth, seed=s, run_id=100 + s, domains=domains,
                            estimates={"auto-range": rng.dirichlet(np.ones(len(domains)))}) for s in seeds]


def test_pass2_cells_keep_budget_and_twin_targets_per_seed():
    mod = _script()
    b = load_benchmark(ROOT / "runs" / "ladder-pass2.yaml")
    expanded = expand(b)
    rng = np.random.default_rng(0)
    twin = next(c for c in b.cells if c.name == "XS-300-twin")
    ind = next(c for c in b.cells if c.name == "S-100-ind")
    pairs = (_pairs("XS-300-twin", "dir-a0.7-s1", [0, 1, 2], b.domains, rng)
             + _pairs("S-100-ind", "dir-a0.7-s1", [0, 1], b.domains, rng))
    a = SimpleNamespace(estimator="auto-range", n_samples=16, n_tokens=32, benchmark="runs/ladder-pass2.yaml")
    cells, sources = mod.pass2_cells(None, twin, expanded, pairs, ["dir-a0.7-s1"], ["uniform", "oracle", "fixed"], {}, a)
    assert [c["name"] for c in cells] == [f"XS-300-twin-p2-dir-a0.7-s1-s{s}" for s in (0, 1, 2)]
    assert all(c["steps"] == 300 and c["twin"] is True and c["size"] == "XS" for c in cells)
    assert {c["case"] for c in cells} == {"XS-300-twin"}  # one case: the seeds are its replicates in the report
    assert [c["seeds"] for c in cells] == [[0], [1], [2]] and len(sources) == 3
    for c, p in zip(cells, pairs):  # each seed's own recipe, rounded onto the simplex
        w = c["spec"]["lld"]["recipe"]
        assert sum(w.values()) == pytest.approx(1.0, abs=1e-12)
        assert [w[d] for d in b.domains] == pytest.approx(list(p.estimates["auto-range"]), abs=2e-6)
    cells, _ = mod.pass2_cells(None, ind, expanded, pairs, ["dir-a0.7-s1"], ["uniform", "fixed"], {}, a)
    assert all(c["steps"] == 100 and "twin" not in c for c in cells)  # an independent target stays one
    # a truth the cell does not train, and one whose pass 1 has not finished: a one-line refusal
    with pytest.raises(UserError, match="S-100-ind trains none of"):
        mod.pass2_cells(None, ind, expanded, pairs, ["dir-a2-s1"], ["uniform", "fixed"], {}, a)
    with pytest.raises(UserError, match="no finished pass 1 for .'dir-a2-s1'. in cell XS-300-twin"):
        mod.pass2_cells(None, twin, expanded, pairs, ["dir-a2-s1"], ["uniform", "fixed"], {}, a)


def test_dry_run_estimate_counts_the_reweighting_runs_delta_and_gram():
    """A re-weighting run costs its Δ scoring (a forward over n_est texts per domain at each schedule step)
    and, for adjusted-LLD or record_gram, the Gram (a forward and backward over gram texts per domain);
    uniform and the oracle cost neither. Checked against the count written out by hand."""
    from lldmix_core.benchmark.suite import EVAL_TEXT_TOKENS, reweighting_steps
    from lldmix_core.mathcore.schedule import lld_schedule

    b = load_benchmark(ROOT / "runs" / "ladder-pass2.yaml")
    c = next(c for c in expand(b) if c.cell == "XS-300-twin")
    spec = c.spec  # iterative + adjusted re-weight; record_gram: true; 8 Δ texts, 4 Gram texts per domain
    K, step_tokens, n = 9, 16 * 256, len(lld_schedule(300))
    per_run = n * (K * 8 * EVAL_TEXT_TOKENS / (3 * step_tokens) + K * 4 * EVAL_TEXT_TOKENS / step_tokens)
    assert reweighting_steps(spec, K) == pytest.approx(2 * per_run)
    plain = spec.model_copy(update={"methods": ("uniform", "oracle")})
    assert reweighting_steps(plain, K) == 0.0
    no_gram = spec.model_copy(update={"methods": ("uniform", "iterative-lld"),
                                      "lld": spec.lld.model_copy(update={"record_gram": False})})
    assert reweighting_steps(no_gram, K) == pytest.approx(n * K * 8 * EVAL_TEXT_TOKENS / (3 * step_tokens))
    adjusted = spec.model_copy(update={"methods": ("uniform", "adjusted-lld"),
                                       "lld": spec.lld.model_copy(update={"record_gram": False})})
    assert reweighting_steps(adjusted, K) == pytest.approx(per_run)  # adjusted-LLD solves the Gram regardless
