"""Versioned domains (issue 25 item 3): a recipe's domain manifest, the one-line refusal when a corpus's
domains differ (nothing written), the explicit mappings (closed-form split by tokens) and old recipes."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest

from conftest import run_cli
from lldmix_core.domain_manifest import difference, manifest, of_texts
from lldmix_core.domain_mapping import for_corpus, map_weights, parse
from lldmix_core.errors import UserError

OLD = {"Legal": ["licence one", "licence two"], "Math": ["x + y", "dx/dt"], "Python": ["import os"]}
# the new corpus: Legal renamed Law, Math's data changed, Python kept
NEW = {"Law": ["licence one", "licence two"], "Math": ["x + y", "a changed text"], "Python": ["import os"]}


def _save(store, name, corpus):
    domains = [d for d, ts in corpus.items() for _ in ts]
    texts = [t for ts in corpus.values() for t in ts]
    h = hashlib.sha256(json.dumps(sorted(zip(domains, texts))).encode()).hexdigest()
    store.save_corpus(name=name, content_hash=h, source="test", settings={}, texts=texts, domains=domains)
    return of_texts(sorted(corpus), domains, texts)


def _count(home, table):
    con = sqlite3.connect(home / "lldmix.db")
    try:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def test_manifest_hash_is_of_names_and_texts_not_of_order():
    a = of_texts(["A", "B"], ["A", "B", "A"], ["t1", "u", "t2"])
    assert a == of_texts(["B", "A"], ["A", "A", "B"], ["t2", "t1", "u"])  # order of texts and domains
    # independently: A's identity is sha256 of its texts' sorted sha256s joined by newlines
    h = sorted(hashlib.sha256(t.encode()).hexdigest() for t in ("t1", "t2"))
    assert a["domains"]["A"] == hashlib.sha256("\n".join(h).encode()).hexdigest()
    assert of_texts(["A", "B"], ["A", "B", "A"], ["t1", "u", "t3"])["hash"] != a["hash"]  # one text changed
    assert manifest({"A": a["domains"]["A"], "C": a["domains"]["B"]})["hash"] != a["hash"]  # one renamed
    assert difference({"A": "1", "B": "2", "C": "3"}, {"B": "2", "C": "4", "D": "5"}).describe() == \
        "missing from the corpus: A; extra in the corpus: D; same name, different data: C"


def test_split_by_tokens_and_merge_closed_form():
    w = {"A": 0.6, "B": 0.3, "C": 0.1}
    # A (0.6) split over A1 (100 tokens) and A2 (300 tokens): 0.6·1/4 = 0.15 and 0.6·3/4 = 0.45
    assert map_weights(w, parse(splits=["A=A1,A2"]), {"A1": 100, "A2": 300}) == \
        pytest.approx({"A1": 0.15, "A2": 0.45, "B": 0.3, "C": 0.1})
    assert map_weights(w, parse(merges=["B+C=BC"], maps=["A=Z"])) == pytest.approx({"Z": 0.6, "BC": 0.4})
    with pytest.raises(UserError, match=r"^--split A=A1,A2: needs the new domains' sizes in tokens"):
        map_weights(w, parse(splits=["A=A1,A2"]))
    with pytest.raises(UserError, match="mapped more than once"):
        parse(maps=["A=X"], splits=["A=Y,Z"])


def test_differing_domains_fail_in_one_line_and_write_nothing(store, home, tmp_path):
    old = _save(store, "old", OLD)
    _save(store, "new", NEW)
    store.save_recipe(name="r", method="fixed", weights={"Legal": 0.5, "Math": 0.3, "Python": 0.2},
                      provenance={"domain_manifest": old})
    rows, out = _count(home, "recipes"), tmp_path / "r.json"
    res = run_cli("recipe", "export", "r", "--corpus", "new", "--out", str(out), env={"LLDMIX_HOME": str(home)},
                  check=False)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "error: recipe r: domains differ from corpus new's (missing from the corpus: Legal; extra in the corpus: "
        "Law; same name, different data: Math); map them with --map OLD=NEW, --merge A+B=C or --split A=B,C"]
    assert not out.exists() and _count(home, "recipes") == rows and res.stdout == ""
    # the recipe's own corpus passes unchanged
    ok = run_cli("recipe", "export", "r", "--corpus", "old", "--out", str(out), env={"LLDMIX_HOME": str(home)})
    assert json.loads(out.read_text())["weights"] == {"Legal": 0.5, "Math": 0.3, "Python": 0.2}, ok.stderr


def test_mapping_resolves_and_is_recorded(store, home, tmp_path):
    from typer.testing import CliRunner

    from lldmix_core.cli import app

    old, new = _save(store, "old", OLD), _save(store, "new", NEW)
    store.save_recipe(name="r", method="fixed", weights={"Legal": 0.5, "Math": 0.3, "Python": 0.2},
                      provenance={"domain_manifest": old})
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["recipe", "export", "r", "--corpus", "new", "--map", "Legal=Law",
                                   "--map", "Math=Math", "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["weights"] == {"Law": 0.5, "Math": 0.3, "Python": 0.2}
    rec = doc["provenance"]["domain_mapping"]
    assert rec["map"] == {"Legal": "Law", "Math": "Math"} and (rec["from_manifest"], rec["to_manifest"]) == \
        (old["hash"], new["hash"])
    assert doc["provenance"]["domain_manifest"] == new
    # merge and split together: Law = Legal + Math; Python's weight split by the corpus's tokens per domain
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    (tokens / "manifest.json").write_text(json.dumps({"n_tokens": {"Law": 30, "Math": 10, "Python": 5}}))
    res = CliRunner().invoke(app, ["recipe", "export", "r", "--corpus", "new", "--merge", "Legal+Math=Law",
                                   "--split", "Python=Math,Python", "--tokens-dir", str(tokens), "--out", str(out)])
    assert res.exit_code == 0, res.output
    # Python's 0.2 over Math (10 tokens) and Python (5): 0.2·10/15 and 0.2·5/15
    assert json.loads(out.read_text())["weights"] == pytest.approx({"Law": 0.8, "Math": 0.2 * 10 / 15, "Python": 0.2 * 5 / 15})


def test_a_recipe_without_manifest_is_checked_by_name_with_a_note():
    corpus = of_texts(["A", "B"], ["A", "B"], ["a", "b"])
    recipe = {"name": "legacy", "weights": {"A": 0.5, "B": 0.5}, "provenance": {}}
    same, notes = for_corpus(recipe, corpus, parse(), corpus_label="c")
    assert same is recipe and len(notes) == 1 and "cannot be checked" in notes[0]
    with pytest.raises(UserError, match=r"^recipe legacy: domains differ from corpus c's \(missing from the corpus: B\); map them"):
        for_corpus({**recipe, "weights": {"A": 0.5, "B": 0.5}}, of_texts(["A"], ["A"], ["a"]), parse(), corpus_label="c")


SPEC = """
name: applied
seeds: [0]
tokenizer: bytes
corpus: {local: true, eval_per_domain: 2}
arch: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}
target: {train: {steps: 2, seed: 99}}
training: {steps: 2, batch_size: 2, lr: 1.0e-2, warmup_steps: 1, checkpoint_every: 100}
eval_steps: [2]
methods: [fixed]
lld: {recipe_file: RECIPE}
kl: {sampled: {n_samples: 4, n_tokens: 16}}
tracking: {mlflow: false}
"""


def test_a_spec_applying_a_recipe_to_other_domains_is_refused_before_any_run_row(store, home, tmp_path):
    import yaml

    from lldmix_core.config import get_settings
    from lldmix_core.engine import Engine
    from lldmix_core.prepare import prepare_eval_corpus
    from lldmix_core.spec import CorpusSpec, RunSpec

    info = prepare_eval_corpus(store, CorpusSpec(local=True, eval_per_domain=2), get_settings(), "applied-eval")
    t = store.load_texts(info.id)
    true = of_texts(info.domains, t.domains, t.texts)
    ids = dict(true["domains"])
    ids["Law"] = ids.pop("Legal")  # renamed
    ids["Math"] = "0" * 64  # other data under the same name
    weights = {d: 1 / len(ids) for d in ids}
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"name": "r", "method": "fixed", "weights": weights,
                                "provenance": {"domain_manifest": manifest(ids)}}))
    spec = RunSpec.model_validate(yaml.safe_load(SPEC.replace("RECIPE", str(path))))
    inline = yaml.safe_load(SPEC.replace("{recipe_file: RECIPE}", json.dumps({"recipe": weights, "domain_manifest": ids})))
    assert spec.spec_hash == RunSpec.model_validate(inline).spec_hash  # the file's content, hashed as if inline
    runs = _count(home, "runs")
    with pytest.raises(UserError) as e:
        Engine(store, get_settings(), verbose=False).run(spec)
    assert str(e.value) == ("lld.domain_manifest: the recipe's domains differ from corpus applied-eval's (missing from "
                            "the corpus: Law; extra in the corpus: Legal; same name, different data: Math); map them "
                            "with `lldmix recipe export --corpus applied-eval` and --map, --merge or --split")
    assert _count(home, "runs") == runs == 0 and _count(home, "recipes") == 0
    from lldmix_core.domain_mapping import check_run_domains

    check_run_domains(true["domains"], true, corpus_label="applied-eval")  # its own corpus passes


def test_a_phased_recipe_maps_every_phase():
    old = manifest({"A": "1", "B": "2"})
    new = manifest({"A2": "1", "B": "2"})
    phases = [{"until": 0.5, "weights": {"A": 0.9, "B": 0.1}}, {"until": 1.0, "weights": {"A": 0.2, "B": 0.8}}]
    recipe = {"name": "p", "weights": {"A": 0.55, "B": 0.45}, "provenance": {"domain_manifest": old, "phases": phases}}
    mapped, _ = for_corpus(recipe, new, parse(maps=["A=A2"]), corpus_label="c")
    assert [p["weights"] for p in mapped["provenance"]["phases"]] == [{"A2": 0.9, "B": 0.1}, {"A2": 0.2, "B": 0.8}]
    assert mapped["weights"] == {"A2": 0.55, "B": 0.45} and recipe["provenance"]["phases"] == phases  # input kept
