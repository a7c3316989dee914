"""The tracker's children carry what users filter on, the parent lists them, and each child has the
evaluation dataset and the recipe (MLflow on a SQLite store in a temp folder)."""

from __future__ import annotations

import pytest


@pytest.fixture
def tracker(tmp_path, monkeypatch):
    from lldmix_core.tracking import make_tracker

    monkeypatch.chdir(tmp_path)
    return make_tracker(True, f"sqlite:///{tmp_path / 'mlflow.db'}", "exp", tmp_path / "mlartifacts")


RECIPE = {"id": 1, "name": "s.aggregated-lld.seed3", "method": "aggregated-lld-geometric",
          "weights": {"a": 0.7, "b": 0.3}, "provenance": {"tau_setting": "auto"}}


def test_children_carry_the_filterable_params_and_the_parent_lists_them(tracker):
    from lldmix_core.tracking import INHERITED_PARAMS, code_version

    parent = tracker.start_parent("s", {"spec_hash": "h1", "corpus_hash": "c1", "tokenizer": "gpt2", "methods": "x,y"})
    tracker.log_eval_dataset(parent, ["t1", "t2", "t3"], ["a", "b", "a"], "/data/eval.jsonl", "s-eval")
    kids = {m: tracker.start_child(parent, f"s.{m}.seed3", {"method": m, "seed": 3, "tau_setting": "auto"})
            for m in ("uniform", "aggregated-lld")}
    tracker.log_resolved_tau(kids["aggregated-lld"], 0.25)
    tracker.log_recipe(kids["aggregated-lld"], RECIPE)
    c = tracker.client

    hits = c.search_runs([tracker.experiment_id], "params.method = 'aggregated-lld' and params.seed = '3'")
    assert [r.info.run_id for r in hits] == [kids["aggregated-lld"]]
    p = hits[0].data.params
    assert {k: p[k] for k in INHERITED_PARAMS} == {"spec_name": "s", "spec_hash": "h1", "corpus_hash": "c1",
                                                   "code_version": code_version(), "tokenizer": "gpt2"}
    assert p["tau_setting"] == "auto" and float(p["tau_resolved"]) == 0.25 and p["recipe_name"] == RECIPE["name"]
    assert "methods" not in p  # only the listed params are inherited
    assert hits[0].data.tags["mlflow.parentRunId"] == parent and hits[0].data.tags["lldmix.seed"] == "3"
    # filtering on the spec finds the children (the UI would otherwise show only the parent)
    assert len(c.search_runs([tracker.experiment_id], "params.spec_hash = 'h1' and tags.mlflow.parentRunId != ''")) >= 2

    for kid in kids.values():  # each child has the evaluation dataset, as evaluation input
        inputs = c.get_run(kid).inputs.dataset_inputs
        assert [(i.dataset.name, i.tags[0].value) for i in inputs] == [("s-eval", "evaluation")]

    import mlflow

    mlflow.set_tracking_uri(tracker.tracking_uri)
    listed = mlflow.artifacts.load_dict(f"runs:/{parent}/children.json")["children"]
    assert [(r["run_id"], r["method"], r["seed"]) for r in listed] == [(kids["uniform"], "uniform", "3"),
                                                                      (kids["aggregated-lld"], "aggregated-lld", "3")]
    assert c.get_run(parent).data.tags["lldmix.children"] == "2"
    assert mlflow.artifacts.load_dict(f"runs:/{kids['aggregated-lld']}/recipes/recipe.json")["weights"] == RECIPE["weights"]
    csv_text = mlflow.artifacts.load_text(f"runs:/{kids['aggregated-lld']}/recipes/recipe.csv")
    assert csv_text.splitlines() == ["domain,weight", "a,0.7", "b,0.3"]


def test_a_resumed_child_keeps_its_run(tracker):
    parent = tracker.start_parent("s", {"spec_hash": "h"})
    kid = tracker.start_child(parent, "s.uniform.seed0", {"method": "uniform", "seed": 0})
    tracker.end(kid, "FAILED")
    assert tracker.start_child(parent, "s.uniform.seed0", {"method": "uniform", "seed": 0}, run_id=kid) == kid
    assert tracker.client.get_run(kid).info.status == "RUNNING"


def test_code_version_names_the_package_version():
    from lldmix_core import __version__
    from lldmix_core.tracking import code_version

    assert code_version().split("+g")[0] == __version__
