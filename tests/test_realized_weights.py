"""Realized weights: the tokens a run trained per domain (and per phase), stored from the per-step draws,
equal what the training loop actually drew — also across a resume — and the shares/TV follow from them.

Independent expectation: a spy on DomainStreams.get_batch records every batch the loop drew (domain, rows);
tokens = rows × block_size. Mutations seen to fail: counting only the steps of the last train() call
(the resume test), dropping the phase split (phase test), TV without the ½ (closed-form test), the app
showing intended as realized (Compare test), leaving out the epoch warning (report-line test).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from lldmix_core import mathcore as mc

SPEC = """
name: realized
seeds: [0]
tokenizer: bytes
corpus: {local: true, eval_per_domain: 2}
arch: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}
target: {train: {steps: 4, seed: 99, multipliers: {Python: 3.0}}}
training: {steps: 8, batch_size: 3, lr: 1.0e-2, warmup_steps: 1, checkpoint_every: 4}
eval_steps: [8]
methods: [fixed, uniform]
lld:
  unit: token
  phases:
    - {until: 0.5, weights: {Python: 1.0}}
    - {until: 1.0, weights: {C++: 0.5, JSON: 0.5}}
kl: {sampled: {n_samples: 8, n_tokens: 16}}
tracking: {mlflow: false}
"""


def test_total_variation_and_intended_shares_closed_form():
    assert mc.total_variation([1, 0, 0], [0, 1, 0]) == pytest.approx(1.0)
    assert mc.total_variation([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25)
    # weights [1,0] for steps 0–2, [0,1] for 3–9 (the entry at step 10 = after the last update counts nothing)
    got = mc.intended_token_shares({0: np.array([1.0, 0.0]), 3: np.array([0.0, 1.0]), 10: np.array([1.0, 0.0])}, 10)
    np.testing.assert_allclose(got, [0.3, 0.7])
    np.testing.assert_allclose(mc.intended_token_shares({10: np.array([0.2, 0.8])}, 10), [0.2, 0.8])  # recorded at the end only
    np.testing.assert_allclose(mc.realized_tokens([0, 2, 2, 1, 2], 3, 100), [100, 100, 300])


def _run(tmp_path_factory, name, fault_at=None):
    from conftest import fresh_home
    from lldmix_core import engine as engine_mod, faults
    from lldmix_core.corpus.streams import DomainStreams
    from lldmix_core.spec import RunSpec

    drawn: list[tuple[int, str]] = []
    real = DomainStreams.get_batch

    def spy(self, domain, batch_size, *a, **k):
        drawn.append((batch_size, domain))
        return real(self, domain, batch_size, *a, **k)

    DomainStreams.get_batch = spy
    home = tmp_path_factory.mktemp(name) / "home"
    try:
        with fresh_home(home) as (settings, store):
            spec = RunSpec.model_validate(yaml.safe_load(SPEC))
            if fault_at is not None:  # fail at the n-th training step of this process (a full disk)
                faults._armed["train_step"], faults._seen["train_step"] = (fault_at, "enospc"), 0
                try:
                    with pytest.raises(Exception):
                        engine_mod.Engine(store, settings, verbose=False).run(spec)
                finally:
                    faults._armed.pop("train_step", None)
            outcome = engine_mod.Engine(store, settings, verbose=False).run(spec)
            return store, outcome, drawn, home
    finally:
        DomainStreams.get_batch = real


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return _run(tmp_path_factory, "plain")


def _tokens(store, run_id):
    return {m["key"]: m["value"] for m in store.get_metrics(run_id) if m["key"].startswith("realized_tokens/")}


def test_realized_tokens_are_the_batches_drawn(plain):
    from lldmix_core.realized import realized_of

    store, outcome, drawn, _ = plain
    student = [d for b, d in drawn if b == 3]  # every batch: the target's 4 steps, then each run's 8
    runs = {r.method: r for r in outcome.runs}
    assert len(student) == 4 + 8 + 8
    order = [r.method for r in sorted(outcome.runs, key=lambda r: r.run_id)]  # the order they were opened in
    if {store.get_run(r.run_id).provenance["train_path"] for r in outcome.runs} == {"single"}:
        per_run = {m: student[4 + 8 * i:12 + 8 * i] for i, m in enumerate(order)}  # one run after the other
    else:  # trained together: at every step each member draws its batch, in the group's order
        per_run = {m: student[4 + i::len(order)] for i, m in enumerate(order)}
    for method, batches in per_run.items():
        mix = realized_of(store, runs[method].run_id)
        expected = Counter(batches)
        assert {d: t for d, t in zip(mix.domains, mix.tokens) if t} == {d: 3 * 32 * n for d, n in expected.items()}
        assert mix.tv == pytest.approx(mc.total_variation(mix.intended, mix.tokens / mix.tokens.sum()))
    fixed = realized_of(store, runs["fixed"].run_id)
    k = fixed.domains.index
    assert fixed.intended[k("Python")] == pytest.approx(0.5) and fixed.intended[k("C++")] == pytest.approx(0.25)
    # phase 0 is all Python: 4 steps × 96 tokens; phase 1 only C++ and JSON
    assert [p.first_step for p in fixed.phases] == [0, 4]
    assert fixed.phases[0].tokens[k("Python")] == 4 * 96 and fixed.phases[0].tokens.sum() == 4 * 96
    assert fixed.phases[1].tokens[k("C++")] + fixed.phases[1].tokens[k("JSON")] == 4 * 96


def test_a_resumed_run_counts_every_step(plain, tmp_path_factory):
    store, outcome, _, _ = plain
    # fail at the 4 + 4 + 3 = 11th step: the fixed run's step 6, after its checkpoint at step 4
    store2, outcome2, _, _ = _run(tmp_path_factory, "resumed", fault_at=11)
    for a, b in zip(sorted(outcome.runs, key=lambda r: r.method), sorted(outcome2.runs, key=lambda r: r.method)):
        ta, tb = _tokens(store, a.run_id), _tokens(store2, b.run_id)
        assert ta and ta == tb
        assert sum(v for key, v in tb.items() if key.count("/") == 1) == 8 * 96


def test_report_and_results_show_intended_vs_realized(plain):
    from lldmix_core.realized import realized_of
    from lldmix_core.report import format_report
    from lldmix_core.results_doc import render_results

    store, outcome, _, _ = plain
    text = format_report(outcome, "db", "mlflow", store=store)
    doc = render_results(outcome, store, command="lldmix results x", spec_description="x.", pairs=[], trajectories=[])
    for r in outcome.runs:
        tv = 100 * realized_of(store, r.run_id).tv
        assert f"TV {tv:5.1f} % of 768 tokens" in text
        assert f"| {r.method} | {r.seed} | {tv:.1f} | 768 |" in doc
    assert "phase 1 (steps 4–7)" in text


def test_compare_page_shows_tv_per_method(plain, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from lldmix_core.realized import realized_of

    store, outcome, _, home = plain
    monkeypatch.setenv("LLDMIX_HOME", str(home))
    monkeypatch.delenv("LLDMIX_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app" / "main.py"), default_timeout=120)
    at.run()
    at.switch_page("views/compare.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(df.value for df in at.dataframe if "TV (% of tokens)" in df.value.columns)
    expected = {r.method: round(100 * realized_of(store, r.run_id).tv, 1) for r in outcome.runs}
    assert dict(zip(table["method"], table["TV (% of tokens)"])) == expected
    per_domain = next(df.value for df in at.dataframe if "realized (%)" in df.value.columns)
    assert per_domain["realized (%)"].sum() == pytest.approx(100, abs=0.05)


def test_report_line_warns_when_a_run_repeated_a_domain_over_four_epochs():
    from lldmix_core.realized import RealizedMix, format_realized

    # 1,000 tokens on a domain of 100 unique tokens: 10 epochs; 3,000 on 10,000 unique: 0.3
    mix = RealizedMix(1, ("big", "small"), 4, np.array([0.5, 0.5]), np.array([3000.0, 1000.0]),
                      unique_tokens=np.array([10_000, 100]))
    lines = format_realized("fixed seed 0", mix)
    assert "TV  25.0 % of 4,000 tokens" in lines[0]  # ½(|0.5 − 0.75| + |0.5 − 0.25|)
    assert len(lines) == 2 and "this run repeated small 10.0 epochs (100 unique tokens)" in lines[1]
    quiet = RealizedMix(1, ("big", "small"), 4, np.array([0.5, 0.5]), np.array([3000.0, 1000.0]),
                        unique_tokens=np.array([10_000, 1000]))
    assert len(format_realized("fixed seed 0", quiet)) == 1
