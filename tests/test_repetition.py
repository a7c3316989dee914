"""Repetition accounting and the epoch cap: closed forms for the water-filling cap, the warning line, the
spec option (hash kept when unset, one-line errors), the export's warning and provenance, and a run whose
fixed recipe the engine capped before training.

Mutations seen to fail: one clipping pass instead of repeating (two-round closed form), dropping
`max_epochs` from the hash exclusion (hash test), render without the comment (export test), the engine
training the uncapped recipe (engine test).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import yaml

from lldmix_core import mathcore as mc
from lldmix_core.errors import UserError
from lldmix_core.repetition import cap_recipe, repetition_warning, with_repetition


def test_cap_one_round_closed_form():
    # caps c = 2 × [100, 1000, 1000] / 1000 = [0.2, 2, 2]: domain 0 clipped to 0.2, its 0.3 spread 3:2
    got = mc.cap_epochs([0.5, 0.3, 0.2], 1000, [100, 1000, 1000], 2.0)
    np.testing.assert_allclose(got, [0.2, 0.3 + 0.18, 0.2 + 0.12])


def test_cap_two_rounds_closed_form():
    # caps [0.2, 0.4, 20]: round 1 clips d0 (0.4 spread 3:1 → d1 0.6 > 0.4), round 2 clips d1; d2 takes the rest
    got = mc.cap_epochs([0.6, 0.3, 0.1], 1000, [100, 200, 10_000], 2.0)
    np.testing.assert_allclose(got, [0.2, 0.4, 0.4])
    assert np.all(mc.implied_epochs(got, 1000, [100, 200, 10_000]) <= 2.0 + 1e-12)


def test_cap_leaves_a_feasible_recipe_alone_and_refuses_an_impossible_cap():
    np.testing.assert_allclose(mc.cap_epochs([0.1, 0.9], 1000, [1000, 1000], 1.0), [0.1, 0.9])
    assert cap_recipe({"a": 0.1, "b": 0.9}, 1000, {"a": 1000, "b": 1000}, 1.0)[1] is None
    with pytest.raises(ValueError, match="no mixture fits"):
        mc.cap_epochs([0.5, 0.5], 1000, [100, 100], 2.0)  # 2 × 200 unique tokens < a 1000-token budget
    with pytest.raises(UserError, match="lld.max_epochs 2"):
        cap_recipe({"a": 0.5, "b": 0.5}, 1000, {"a": 100, "b": 100}, 2.0)


def test_warning_names_the_domains_over_the_threshold():
    # 20 % of 10,000 tokens on a domain of 100 unique tokens: 20 epochs; 80 % on 10,000 unique: 0.8
    line = repetition_warning({"small": 0.2, "big": 0.8}, 10_000, {"small": 100, "big": 10_000})
    assert "small 20.0 epochs (100 unique tokens)" in line and "big" not in line
    assert repetition_warning({"small": 0.01, "big": 0.99}, 10_000, {"small": 100, "big": 10_000}) is None


def test_spec_option_keeps_old_hashes_and_refuses_bad_values():
    from test_phased_training import SPEC, test_specs_without_phases_keep_their_hash

    from lldmix_core.spec import RunSpec

    test_specs_without_phases_keep_their_hash()
    doc = yaml.safe_load(SPEC)
    doc["lld"] = {"recipe": {"Python": 1.0}}
    doc["methods"] = ["fixed"]
    plain = RunSpec.model_validate(doc).spec_hash
    assert RunSpec.model_validate({**doc, "lld": {**doc["lld"], "max_epochs": 4}}).spec_hash != plain
    with pytest.raises(ValueError, match="max_epochs"):
        RunSpec.model_validate({**doc, "lld": {**doc["lld"], "max_epochs": 0}})
    with pytest.raises(ValueError, match="max_epochs: caps one-mixture recipes only"):
        RunSpec.model_validate(yaml.safe_load(SPEC) | {"lld": {**yaml.safe_load(SPEC)["lld"], "max_epochs": 4}})


def test_export_warns_comments_and_caps(store, tmp_path):
    from typer.testing import CliRunner

    from lldmix_core.cli import app

    store.save_recipe(name="r", method="fixed", weights={"small": 0.2, "big": 0.8},
                      provenance={"budget_tokens": 10_000, "unique_tokens": {"small": 100, "big": 10_000}})
    out = tmp_path / "r.mosaic.yaml"
    res = CliRunner().invoke(app, ["recipe", "export", "r", "--format", "mosaic", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "small 20.0 epochs" in res.output
    text = out.read_text()
    assert text.startswith("# WARNING: at a budget of 10,000 tokens") and yaml.safe_load(text)["streams"]
    out_json = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["recipe", "export", "r", "--out", str(out_json), "--max-epochs", "4"])
    assert res.exit_code == 0, res.output
    doc = json.loads(out_json.read_text())
    # cap 4 × 100 / 10,000 = 0.04 for small; big takes the rest
    assert doc["weights"] == pytest.approx({"small": 0.04, "big": 0.96})
    assert doc["provenance"]["epoch_cap"]["before"] == {"small": 0.2, "big": 0.8}
    assert doc["provenance"]["repetition"]["epochs"] == pytest.approx({"small": 4.0, "big": 0.96})
    assert "warning" not in doc["provenance"]["repetition"] and "capped small" in res.output
    bad = CliRunner().invoke(app, ["recipe", "export", "r", "--budget-tokens", "0"])
    assert isinstance(bad.exception, UserError) and str(bad.exception).startswith("--budget-tokens 0.0:")


def test_a_recipe_without_counts_needs_the_streams_folder():
    with pytest.raises(UserError, match="--tokens-dir"):
        with_repetition({"name": "x", "weights": {"a": 1.0}, "provenance": {}}, budget_tokens=100)
    assert with_repetition({"name": "x", "weights": {"a": 1.0}, "provenance": {}}) == \
        ({"name": "x", "weights": {"a": 1.0}, "provenance": {}}, [])


ENGINE_SPEC = """
name: NAME
seeds: [0]
tokenizer: bytes
corpus: {local: true, eval_per_domain: 2}
arch: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}
target: {train: {steps: 4, seed: 99, multipliers: {Python: 3.0}}}
training: {steps: 4, batch_size: 2, lr: 1.0e-2, warmup_steps: 1, checkpoint_every: 100}
eval_steps: [4]
methods: [METHODS]
kl: {sampled: {n_samples: 4, n_tokens: 16}}
tracking: {mlflow: false}
"""


def test_the_engine_trains_the_capped_recipe(tmp_path):
    from conftest import fresh_home
    from lldmix_core import engine as engine_mod
    from lldmix_core.repetition import unique_tokens_of_streams
    from lldmix_core.spec import RunSpec

    with fresh_home(tmp_path / "home") as (settings, store):
        first = yaml.safe_load(ENGINE_SPEC.replace("NAME", "counts").replace("METHODS", "uniform"))
        engine_mod.Engine(store, settings, verbose=False).run(RunSpec.model_validate(first))
        (manifest,) = (tmp_path / "home").rglob("manifest.json")
        unique = unique_tokens_of_streams(manifest.parent)
        budget = 4 * 2 * 32
        m = 0.5 * budget / unique["Python"]  # Python's cap is exactly half the tokens
        doc = yaml.safe_load(ENGINE_SPEC.replace("NAME", "capped").replace("METHODS", "fixed"))
        doc["lld"] = {"recipe": {"Python": 0.9, "C++": 0.1}, "max_epochs": m}
        outcome = engine_mod.Engine(store, settings, verbose=False).run(RunSpec.model_validate(doc))
        (run,) = outcome.runs
        stored = store.get_weights(run.run_id)
        trained = stored[min(stored)]  # a fixed mixture, recorded at its evaluation step
        note = store.get_run(run.run_id).config["epoch_cap"]
    assert trained["Python"] == pytest.approx(0.5)
    if m * unique["C++"] / budget >= 0.5:  # C++ can take the other half: the closed form is 50/50
        assert trained["C++"] == pytest.approx(0.5)
    assert all(trained[d] * budget / unique[d] <= m * (1 + 1e-9) for d in trained)
    assert note["before"]["Python"] == 0.9 and note["capped"][0] == "Python"


def test_recipes_page_warns_and_shows_the_cap(home, store, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    note = cap_recipe({"small": 0.2, "big": 0.8}, 10_000, {"small": 100, "big": 10_000}, 4.0)[1]
    store.save_recipe(name="over", method="fixed", weights={"small": 0.2, "big": 0.8},
                      provenance={"budget_tokens": 10_000, "unique_tokens": {"small": 100, "big": 10_000}})
    store.save_recipe(name="capped", method="fixed", weights=note["after"],
                      provenance={"budget_tokens": 10_000, "unique_tokens": {"small": 100, "big": 10_000}, "epoch_cap": note})
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app" / "main.py"), default_timeout=120)
    at.run()
    at.switch_page("views/recipes.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1 and "small 20.0 epochs" in warnings[0]  # the capped recipe is at 4.0: no warning
    assert any("capped small and renormalised: small 20.0 % → 4.0 %" in i.value for i in at.info)
    tables = [df.value for df in at.dataframe if "epochs at the run's budget" in df.value.columns]
    assert sorted(tables[0]["epochs at the run's budget"]) == pytest.approx([0.8, 20.0]) or \
        sorted(tables[1]["epochs at the run's budget"]) == pytest.approx([0.8, 20.0])


def test_aggregated_recipe_is_capped_before_it_is_stored(tmp_path):
    """With max_epochs = budget / Σ unique tokens every domain's cap is its share of the unique tokens and the
    caps sum to 1: the only mixture that fits is the one proportional to the unique tokens (closed form)."""
    from conftest import fresh_home
    from lldmix_core import engine as engine_mod
    from lldmix_core.repetition import unique_tokens_of_streams
    from lldmix_core.spec import RunSpec

    with fresh_home(tmp_path / "home") as (settings, store):
        first = yaml.safe_load(ENGINE_SPEC.replace("NAME", "counts").replace("METHODS", "uniform"))
        engine_mod.Engine(store, settings, verbose=False).run(RunSpec.model_validate(first))
        (manifest,) = (tmp_path / "home").rglob("manifest.json")
        unique = unique_tokens_of_streams(manifest.parent)
        budget = 4 * 2 * 32
        doc = yaml.safe_load(ENGINE_SPEC.replace("NAME", "agg").replace("METHODS", "iterative-lld, aggregated-lld"))
        doc["eval_steps"] = "schedule"
        doc["lld"] = {"tau": 0.5, "max_epochs": budget / sum(unique.values()) * (1 + 1e-9)}
        outcome = engine_mod.Engine(store, settings, verbose=False).run(RunSpec.model_validate(doc))
        (recipe,) = [r for r in store.list_recipes() if r["provenance"].get("pass1_run_id")]
        run = next(r for r in outcome.runs if r.method == "aggregated-lld")
        stored = store.get_weights(run.run_id)
        trained = stored[min(stored)]
        texts = store.load_texts(store.get_corpus(recipe["provenance"]["corpus_hash"][:12]).id)
    share = {d: n / sum(unique.values()) for d, n in unique.items()}
    assert recipe["weights"] == pytest.approx(share, rel=1e-6)
    assert trained == pytest.approx(share, rel=1e-6)
    prov = recipe["provenance"]
    assert prov["budget_tokens"] == budget and prov["unique_tokens"] == unique
    assert sum(prov["epoch_cap"]["before"].values()) == pytest.approx(1.0) and prov["epoch_cap"]["after"] == recipe["weights"]
    # versioned domains: the recipe records its corpus's manifest (per-domain sha256 of its texts' sorted sha256s)
    by_domain = {}
    for d, t in zip(texts.domains, texts.texts):
        by_domain.setdefault(d, []).append(hashlib.sha256(t.encode()).hexdigest())
    assert prov["domain_manifest"]["domains"] == {
        d: hashlib.sha256("\n".join(sorted(h)).encode()).hexdigest() for d, h in sorted(by_domain.items())}
