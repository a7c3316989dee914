"""The headroom ladder's verdicts and document (lldmix_core/benchmark/ladder.py), from summaries built by
the real `summarise` on numbers whose answer is known by hand."""

import math

import numpy as np

import pytest

from lldmix_core import mathcore as mc
from lldmix_core.benchmark.ladder import LadderRow, is_ladder, ladder_grid, render_ladder
from lldmix_core.benchmark.suite import expand, load_benchmark
from lldmix_core.headroom import SeedPairKL, summarise

from conftest import ROOT


def _row(uniform, oracle, floor, *, size="2×64", steps=300, twin=True, truth="t", cell="c"):
    pairs = [SeedPairKL("oracle", i, i + 1, f, 0.001, 128) for i, f in enumerate(floor)]
    s = summarise({"uniform": dict(enumerate(uniform)), "oracle": dict(enumerate(oracle))}, pairs)
    return LadderRow(cell, truth, size, 100_000, steps, twin, 0.1, s, ("abc",), "h" * 64)


def test_the_verdict_compares_the_interval_of_h_with_three_floors():
    # H per seed 0.10, 0.11, 0.12: mean 0.11, sd 0.01, t(0.975, 2) = 4.303 → interval 0.11 ± 0.0248
    r = _row([0.10, 0.11, 0.12], [0, 0, 0], [0.02, 0.02])
    h = r.summary.headroom
    assert h.mean == pytest.approx(0.11) and h.lo == pytest.approx(0.11 - 4.302653 * 0.01 / math.sqrt(3), abs=1e-5)
    assert r.summary.h_over_floor == pytest.approx(5.5) and r.verdict == "yes"  # 0.0852 > 3 × 0.02
    assert _row([0.10, 0.11, 0.12], [0, 0, 0], [0.03, 0.03]).verdict == "mean only"  # 0.0852 < 0.09 < 0.11
    assert _row([0.10, 0.11, 0.12], [0, 0, 0], [0.05, 0.05]).verdict == "no"
    assert _row([0.10, 0.11, 0.12], [0, 0, 0], []).verdict == "—"  # no floor measured: no verdict
    # the smallest detectable H: (t_.975 + t_.80) · sd / √n with 2 degrees of freedom
    assert r.h_mde == pytest.approx(mc.min_detectable_effect(0.01, 3))


def test_the_document_answers_where_h_exceeds_three_floors_and_lists_what_is_missing():
    b = load_benchmark(ROOT / "runs" / "ladder.yaml")
    cells = expand(b)
    assert is_ladder(cells) and not is_ladder(expand(load_benchmark(ROOT / "runs" / "recovery.yaml")))
    rows = [_row([0.10, 0.11, 0.12], [0, 0, 0], [0.02, 0.02], cell="S-300-twin", truth="dir-a2-s1"),
            _row([0.03, 0.01, 0.05], [0.02, 0.02, 0.02], [0.04, 0.05], twin=False, steps=100, cell="S-100-ind",
                 truth="dir-a2-s1"),
            LadderRow("M-1000-twin", "dir-a2-s1", "2×128", 400_000, 1000, True, 0.1, None)]
    text = render_ladder(b, cells, rows, "lldmix results runs/ladder.yaml --out X")
    assert "finished: **2 of 3**" in text
    assert "3 × the noise floor (its whole interval) in 1 of 2 cases: S-300-twin·dir-a2-s1." in text
    assert "H's interval excludes 0 (pass 2's cells) in 1 of 2: S-300-twin·dir-a2-s1." in text
    assert "| M-1000-twin | 2×128 | 1000 | twin | dir-a2-s1 | 0.100 | 0 | not run yet |" in text
    assert "| S-300-twin | 2×64 | 300 | twin | dir-a2-s1 | 0.100 | 3 | +0.1100 [+0.0852, +0.1348] |" in text
    grid = "\n".join(ladder_grid(rows))
    assert "| 2×64 (100 k) | — | 5.50* | — |" in grid  # twin: only the 300-step cell finished
    assert "| 2×64 (100 k) | 0.22 | — | — |" in grid  # independent: H = 0.01, −0.01, 0.03 → 0.01; floor 0.045


def test_a_smoke_ladder_end_to_end_reads_twin_oracles_at_zero_and_the_floor_from_seed_pairs(ladder_smoke_home):
    from lldmix_core.benchmark.ladder import collect_ladder
    from conftest import fresh_home

    b = load_benchmark(ROOT / "runs" / "ladder-smoke.yaml")
    with fresh_home(ladder_smoke_home) as (_, store):
        rows = {r.cell: r for r in collect_ladder(store, expand(b))}
        assert set(rows) == {"XS-8-twin", "XS-16-twin", "XS-16-ind"}
        for r in rows.values():
            s = r.summary
            assert s is not None and s.seeds == (0, 1, 2) and [(p.seed_a, p.seed_b) for p in s.floor] == [(0, 1), (1, 2)]
            assert all(p.bits_per_byte >= 0 for p in s.floor)
        twin, ind = rows["XS-16-twin"], rows["XS-16-ind"]
        assert (twin.steps, twin.twin, ind.twin) == (16, True, False) and rows["XS-8-twin"].steps == 8
        # a twin's oracle is its target: KL exactly 0 on every seed, so H is uniform's KL itself (> 0)
        assert all(h > 0 for h in twin.summary.headroom.per_seed)
        parent = next(r for r in store.list_runs(spec_hash=next(c.spec.spec_hash for c in expand(b)
                                                                if c.cell == "XS-16-twin")) if r.method == "spec")
        finals = {(r.method, r.seed): max((k for k in store.get_kl(r.id) if k.estimator == "sampled"),
                                          key=lambda k: k.step).bits_per_byte
                  for r in store.list_runs(parent_id=parent.id)}
        assert {finals[("oracle", s)] for s in (0, 1, 2)} == {0.0}
        assert list(twin.summary.headroom.per_seed) == [finals[("uniform", s)] for s in (0, 1, 2)]
        # the twin floor is the KL between consecutive seeds' oracles = between their twin targets
        assert twin.summary.floor_bits_per_byte == pytest.approx(np.mean([p.bits_per_byte for p in twin.summary.floor]))


def test_the_benchmark_page_draws_the_ladder_grid(ladder_smoke_home, monkeypatch):
    from test_app import _chart_specs, _open_app, _page

    at = _page(_open_app(ladder_smoke_home, monkeypatch), "views/benchmark.py")
    at.selectbox[0].select("ladder-smoke.yaml").run()
    assert not at.exception and not at.error
    assert "Headroom ladder" in at.subheader[0].value and "3 of 3 (cell, truth) cases finished" in at.caption[0].value
    table = at.dataframe[0].value.set_index("cell")
    assert set(table.index) == {"XS-8-twin", "XS-16-twin", "XS-16-ind"}
    assert (table.h_over_floor - table.h / table["floor"]).abs().max() < 1e-12
    (grid,) = _chart_specs(at)
    cells = {(r["panel"], r["steps"]) for r in grid["_rows"]}
    assert cells == {("twin · dir-a0.7-s1", 8), ("twin · dir-a0.7-s1", 16), ("independent · dir-a0.7-s1", 16)}
