"""The oracle arm, twin targets and the headroom statistics (issue 21).

A twin target is trained from each seed's base with that seed's data order and the runs' budget, so the
mixture is its only difference from a run: the oracle (the target's own mixture) must reproduce it bit
for bit — sampled KL exactly 0, headroom captured exactly 1. Mutations seen to fail these tests: the
twin trained from the spec's fixed seed instead of the run's; the oracle given uniform weights.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import yaml

from lldmix_core import mathcore as mc

TWIN = """
name: twin
seeds: [0, 1]
tokenizer: bytes
corpus: {local: true, eval_per_domain: 2, max_bytes: 128, min_bytes: 32}
arch: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}
target: {train: {twin: true, multipliers: {Python: 4.0, C++: 4.0}}}
training: {steps: 12, batch_size: 2, lr: 1.0e-2, warmup_steps: 1, checkpoint_every: 5}
eval_steps: [6, 12]
methods: [uniform, oracle, fixed]
lld: {unit: token, recipe: {Python: 0.5, C++: 0.5}}
kl: {sampled: {n_samples: 16, n_tokens: 24, steps: final}}
tracking: {mlflow: false}
"""


# ---------------------------------------------------------------- the statistics, closed forms
def test_fieller_closed_form_and_unbounded_case():
    # numerator = 0.5 × denominator on every seed, the denominator well away from 0: the ratio is exact
    den = np.array([1.0, 1.1, 0.9, 1.05])
    r = mc.fieller_interval(0.5 * den, den)
    assert r.estimate == pytest.approx(0.5) and r.bounded
    assert r.lo == pytest.approx(0.5) and r.hi == pytest.approx(0.5)  # no scatter about the ratio: zero width
    # hand-solved quadratic: a = [1, 2, 3], b = [2, 2, 2] (b constant: var 0) → ā/b̄ ± t·se(a)/b̄
    r = mc.fieller_interval([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    half = mc.t_quantile(0.975, 2) * 1.0 / math.sqrt(3) / 2.0
    assert (r.lo, r.hi) == pytest.approx((1.0 - half, 1.0 + half))
    # a denominator that straddles 0 makes the interval unbounded, never a finite lie
    r = mc.fieller_interval([0.1, 0.2, 0.1], [0.05, -0.04, 0.02])
    assert not r.bounded and r.lo == -math.inf and r.hi == math.inf
    assert "unbounded" in r.text()


def test_min_detectable_effect_closed_form():
    # (t_.975,4 + t_.80,4) · sd / √5 with the textbook quantiles 2.776445 and 0.940965
    assert mc.min_detectable_effect(0.02, 5) == pytest.approx((2.776445 + 0.940965) * 0.02 / math.sqrt(5), rel=1e-5)
    assert math.isnan(mc.min_detectable_effect(0.02, 1))


def test_cluster_bootstrap_resamples_targets_not_pairs():
    """Two pairs per target that are exact duplicates carry one target's information: the clustered
    interval of the median equals the interval of the de-duplicated values (same resampling law), and it
    is wider than the naive one that treats the duplicates as independent."""
    distinct = np.array([0.2, 0.5, 0.9, 1.3, 0.7, 1.1])
    dup = np.repeat(distinct, 2)
    clusters = np.repeat(np.arange(6), 2)
    med, lo, hi = mc.cluster_bootstrap_median(dup, clusters, n_boot=4000, seed=3)
    _, lo_d, hi_d = mc.cluster_bootstrap_median(distinct, np.arange(6), n_boot=4000, seed=3)
    _, lo_n, hi_n = mc.cluster_bootstrap_median(dup, np.arange(12), n_boot=4000, seed=3)
    assert med == pytest.approx(np.median(distinct))
    assert (lo, hi) == pytest.approx((lo_d, hi_d), abs=0.1)
    assert hi - lo > hi_n - lo_n
    with pytest.raises(ValueError):
        mc.cluster_bootstrap_median([1.0, 2.0], ["a"])


def test_headroom_summary_by_hand():
    from lldmix_core.headroom import summarise

    kl = {"uniform": {0: 0.30, 1: 0.32, 2: 0.29}, "oracle": {0: 0.25, 1: 0.26, 2: 0.24},
          "iterative-lld": {0: 0.30, 1: 0.32, 2: 0.29}}
    s = summarise(kl)
    assert s.headroom.per_seed == pytest.approx((0.05, 0.06, 0.05)) and s.headroom.detected
    (m,) = s.methods
    assert m.captured.estimate == 0.0 and not m.detected  # identical to uniform: nothing captured
    assert summarise({"uniform": {0: 0.3}, "iterative-lld": {0: 0.2}}) is None  # no oracle, no headroom


# ---------------------------------------------------------------- the oracle on a twin target
def test_oracle_needs_a_target_whose_mixture_is_known():
    from lldmix_core.errors import UserError
    from lldmix_core.spec import load_spec_text

    doc = yaml.safe_load(TWIN)
    doc["target"] = {"path": "/models/some-hf-folder", "kind": "hf"}
    with pytest.raises(UserError) as e:
        load_spec_text(yaml.safe_dump(doc), "hf.yaml")
    assert "\n" not in str(e.value) and "oracle" in str(e.value) and "mixture unknown" in str(e.value)
    doc = yaml.safe_load(TWIN)
    doc["target"]["train"]["seed"] = 5
    with pytest.raises(UserError, match="leave out seed"):
        load_spec_text(yaml.safe_dump(doc), "twin.yaml")


@pytest.fixture(scope="module")
def twin_run(tmp_path_factory):
    from conftest import fresh_home
    from lldmix_core import engine as engine_mod
    from lldmix_core.spec import RunSpec

    with fresh_home(tmp_path_factory.mktemp("twin") / "home") as (settings, store):
        spec = RunSpec.model_validate(yaml.safe_load(TWIN))
        outcome = engine_mod.Engine(store, settings, verbose=False).run(spec)
        yield store, outcome, spec


def test_twin_oracle_reproduces_its_target_bit_for_bit(twin_run):
    store, outcome, _ = twin_run
    by = {(r.method, r.seed): r for r in outcome.runs}
    targets = set()
    for seed in (0, 1):
        oracle = by[("oracle", seed)]
        assert oracle.sampled_bits_per_byte == 0.0  # exactly: the same weights as the target
        target_id = store.get_run(oracle.run_id).target_model_id
        targets.add(target_id)
        assert store.get_model(oracle.final_model_id).fingerprint == store.get_model(target_id).fingerprint
        assert by[("uniform", seed)].sampled_bits_per_byte > 0
    assert len(targets) == 2  # one twin per seed


def test_headroom_captured_is_exactly_one_for_the_oracle(twin_run):
    from lldmix_core.headroom import summarise
    from lldmix_core.report import final_sampled_by_label

    _, outcome, _ = twin_run
    kl = final_sampled_by_label(outcome)
    kl["oracle-copy"] = dict(kl["oracle"])  # a method that lands exactly where the oracle does
    s = summarise(kl)
    assert s.headroom.per_seed == tuple(kl["uniform"][x] for x in (0, 1))  # the oracle's KL is 0
    copy = next(m for m in s.methods if m.label == "oracle-copy")
    assert copy.captured.estimate == 1.0


def test_noise_floor_and_report(twin_run):
    from lldmix_core.headroom import stored_seed_pairs
    from lldmix_core.report import format_report

    store, outcome, _ = twin_run
    (pair,) = stored_seed_pairs(store, outcome.runs)
    assert (pair.method, pair.seed_a, pair.seed_b) == ("oracle", 0, 1) and pair.bits_per_byte > 0
    text = format_report(outcome, "sqlite:///x", "sqlite:///y", store=store)
    assert "Headroom" in text and "H / floor" in text and "reference: needs the target's true training mixture" in text


def test_compare_page_draws_the_oracle_as_a_reference_and_headroom_captured(twin_run, monkeypatch):
    """The dashboard's Compare page on the twin spec: the headroom block, the captured chart with its
    rules at 0 (uniform) and 1 (oracle), and the oracle named as a reference."""
    from test_app import _chart_specs, _open_app, _page

    store, _, _ = twin_run
    home = os.environ["LLDMIX_HOME"]
    at = _page(_open_app(home, monkeypatch), "views/compare.py")
    text = " ".join(str(x.value) for x in at.markdown) + " ".join(str(x.value) for x in at.caption)
    assert "Headroom: what any mixture could win here" in [s.value for s in at.subheader]
    assert "oracle** (reference: needs the target's true training mixture)" in text
    (h,) = [m for m in at.metric if m.label.startswith("H = ")]
    assert h.value.endswith("bits/byte") and float(h.value.split()[0]) > 0
    captured = next(s for s in _chart_specs(at) if "headroom captured" in json.dumps(s))
    assert {r.get("reference") for r in captured["_rows"] if "reference" in r} == {"uniform", "oracle (reference)"}
    assert {r["method"] for r in captured["_rows"] if "method" in r} == {"fixed"}
