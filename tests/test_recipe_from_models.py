"""`lldmix recipe from-models`: a recipe from two checkpoints, recomputed here from the stored
per-domain log-likelihoods; a second call loads no model; bad input ends in one line, exit 2."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from conftest import ROOT, run_cli


def _setup(store, home, tokenizers=("bytes", "bytes")):
    """The mini-Pile's evaluation corpus (2 texts a domain) and two random NanoGPTs, registered."""
    from lldmix_core.config import get_settings
    from lldmix_core.evaluate import register_model
    from lldmix_core.models import new_nanogpt, save_nanogpt
    from lldmix_core.prepare import nanogpt_config, prepare_eval_corpus
    from lldmix_core.spec import ArchSpec, CorpusSpec
    from lldmix_core.tokenizers import get_tokenizer

    prepare_eval_corpus(store, CorpusSpec(local=True, eval_per_domain=2, eval_seed=42), get_settings(), "ev")
    paths = []
    for name, tok, seed, width in (("base", tokenizers[0], 0, 32), ("target", tokenizers[1], 1, 48)):
        cfg = nanogpt_config(ArchSpec(n_layer=1, n_head=2, n_embd=width, block_size=256), get_tokenizer(tok))
        lm = new_nanogpt(cfg, tok, seed)
        path = home / f"{name}.pt"
        save_nanogpt(lm, path)
        register_model(store, lm, name, source=str(path))
        paths.append(path)
    return paths


def _domain_ll(con, model: str, column: str) -> dict[str, float]:
    rows = con.execute(f"""SELECT d.name, dl.{column} FROM domain_logliks dl JOIN domains d ON d.id = dl.domain_id
                           JOIN models m ON m.id = dl.model_id WHERE m.name = ?""", (model,)).fetchall()
    return dict(rows)


def test_recipe_from_models_is_softmax_of_stored_delta_and_reused(store, home):
    paths = _setup(store, home)
    env = {"LLDMIX_HOME": str(home)}
    first = run_cli("recipe", "from-models", "base", "target", "--corpus", "ev", "--tau", "0.05", "--name", "r", env=env)
    assert first.stdout.count(": scored") == 2 and "nats/token" in first.stdout and "MLflow run" in first.stdout

    con = sqlite3.connect(home / "lldmix.db")
    base, target = _domain_ll(con, "base", "nats_per_token"), _domain_ll(con, "target", "nats_per_token")
    assert len(base) == 9 and set(base) == set(target)
    domains = sorted(base)
    delta = np.array([target[d] - base[d] for d in domains])
    expected = np.exp(delta / 0.05) / np.exp(delta / 0.05).sum()
    weights, prov = (json.loads(x) for x in con.execute("SELECT weights, provenance FROM recipes WHERE name = 'r'").fetchone())
    assert np.allclose([weights[d] for d in domains], expected, atol=1e-4, rtol=0)
    assert np.ptp(expected) > 0.01  # the test models differ: a recipe that ignored Δ would fail above
    fps = dict(con.execute("SELECT name, fingerprint FROM models").fetchall())
    corpus_hash = con.execute("SELECT content_hash FROM corpora WHERE name = 'ev'").fetchone()[0]
    assert (prov["base_fingerprint"], prov["target_fingerprint"]) == (fps["base"], fps["target"])
    assert prov["corpus_hash"] == corpus_hash and prov["unit"] == "token" and prov["tau"] == 0.05
    from lldmix_core.domain_manifest import of_texts

    texts = store.load_texts(store.get_corpus("ev").id)
    assert prov["domain_manifest"] == of_texts(sorted(base), texts.domains, texts.texts)
    assert np.allclose([prov["delta"][d] for d in domains], delta, atol=1e-5, rtol=0)
    assert len(prov["git_commit"]) == 40
    # the printed table: Δ per domain as stored
    for d in domains:
        line = next(l for l in first.stdout.splitlines() if l.split()[:1] == [d])
        assert abs(float(line.split()[3]) - prov["delta"][d]) < 1e-4

    # MLflow holds the same recipe and Δ
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    run = client.get_run(prov["mlflow_run_id"])
    assert run.data.params["target_fingerprint"] == fps["target"]
    assert abs(run.data.metrics["delta/Python"] - prov["delta"]["Python"]) < 1e-9
    local = client.download_artifacts(run.info.run_id, "recipes/recipe.json", str(home))
    logged = json.loads(open(local, encoding="utf-8").read())
    assert logged["weights"] == weights

    # a second call reuses both stored vectors: with the checkpoints gone it cannot have loaded a model
    for p in paths:
        p.unlink()
    second = run_cli("recipe", "from-models", "base", "target", "--corpus", "ev", "--tau", "0.05", "--name", "r", env=env)
    assert second.stdout.count("found in the database (no forward pass)") == 2 and "already stored, unchanged" in second.stdout
    assert con.execute("SELECT COUNT(*) FROM loglik_vectors").fetchone()[0] == 2
    assert con.execute("SELECT COUNT(*) FROM recipes").fetchone()[0] == 1
    # τ = auto is the spread of Δ (a new recipe, still no scoring: the checkpoints are gone)
    from lldmix_core.config import get_settings
    from lldmix_core.oneshot import recipe_from_models
    from lldmix_core.recipes import render

    auto = recipe_from_models(store, "base", "target", "ev", tau="auto", unit="byte", checkpoints_dir=get_settings().checkpoints_dir)
    assert auto.scored == {"base": False, "target": False} and auto.name == "base-to-target.byte.tauauto"
    bb, tb = _domain_ll(con, "base", "nats_per_byte"), _domain_ll(con, "target", "nats_per_byte")
    db = np.array([tb[d] - bb[d] for d in domains])
    tau = db.max() - db.min()
    w_auto = json.loads(con.execute("SELECT weights FROM recipes WHERE name = 'base-to-target.byte.tauauto'").fetchone()[0])
    assert np.allclose([w_auto[d] for d in domains], np.exp(db / tau) / np.exp(db / tau).sum(), atol=1e-4, rtol=0)
    assert abs(auto.tau - tau) < 1e-5
    exported = render(store.get_recipe("r"), "csv")
    assert {l.split(",")[0] for l in exported.strip().splitlines()[1:]} == set(domains)

    # the dashboard's Recipes page does the same from the two registered models' stored scores
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.run()
    at.switch_page("views/recipes.py")
    at.run()
    at.selectbox(key="fm-base").set_value("base")
    at.selectbox(key="fm-target").set_value("target")
    at.text_input(key="fm-tau").set_value("0.2")
    at.text_input(key="fm-name").set_value("from-app")
    at.button(key="fm-go").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    w_app = json.loads(con.execute("SELECT weights FROM recipes WHERE name = 'from-app'").fetchone()[0])
    assert np.allclose([w_app[d] for d in domains], np.exp(delta / 0.2) / np.exp(delta / 0.2).sum(), atol=1e-4, rtol=0)
    assert any("from-app" in s.value for s in at.success)
    assert con.execute("SELECT COUNT(*) FROM loglik_vectors").fetchone()[0] == 2

def test_from_models_refuses_tokens_across_vocabularies(store, home):
    from lldmix_core.config import get_settings
    from lldmix_core.errors import UserError
    from lldmix_core.oneshot import parse_tau, recipe_from_models

    _setup(store, home, tokenizers=("bytes", "gpt2"))
    with pytest.raises(UserError, match="--unit byte"):
        recipe_from_models(store, "base", "target", "ev", tau=1.0, unit="token", checkpoints_dir=get_settings().checkpoints_dir)
    with pytest.raises(UserError, match=r"'base' has no stored scores on corpus 'ev': run `lldmix score --model base --corpus ev`"):
        recipe_from_models(store, "base", "target", "ev", tau=1.0, unit="byte", score_missing=False,
                           checkpoints_dir=get_settings().checkpoints_dir)
    assert store.list_recipes() == [] and store.loglik_matrix(store.get_corpus("ev").id)[0] == []  # nothing scored
    store.save_recipe(name="agg", method="aggregated-lld-geometric", weights={"Python": 1.0}, provenance={})
    with pytest.raises(UserError, match=r"'agg' is taken by recipe \d+ \(method aggregated-lld-geometric\)"):
        recipe_from_models(store, "base", "target", "ev", tau=1.0, unit="byte", name="agg",
                           checkpoints_dir=get_settings().checkpoints_dir)
    assert store.get_recipe("agg")["weights"] == {"Python": 1.0}
    for bad in ("0", "-1", "nan", "x"):
        with pytest.raises(UserError, match="--tau"):
            parse_tau(bad)
    proc = run_cli("recipe", "from-models", "base", "base", "--corpus", "ev", "--tau", "1", "--no-mlflow",
                   env={"LLDMIX_HOME": str(home)}, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "same model" in lines[0]
