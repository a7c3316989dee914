"""The dashboard's pages (Streamlit AppTest) on a database seeded by a real smoke run."""

import json
from pathlib import Path

import pytest

APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
pytestmark = pytest.mark.slow


@pytest.fixture
def app(smoke_home, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("LLDMIX_HOME", str(smoke_home))
    monkeypatch.delenv("LLDMIX_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at


def _page(at, page):
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _chart_specs(at):
    """Each chart's vega-lite spec, with its data (sent by Streamlit as Arrow IPC) decoded into `_rows`."""
    import pyarrow as pa

    specs = []
    for c in at.get("vega_lite_chart"):
        spec = json.loads(c.proto.spec)
        spec["_rows"] = [row for ds in c.proto.datasets
                         for row in pa.ipc.open_stream(ds.data.data).read_all().to_pylist()]
        specs.append(spec)
    return specs


def _values(spec):
    return spec["_rows"]


def test_runs_page_lists_the_smoke_runs(app):
    text = " ".join(str(e.value) for e in app.markdown) + " ".join(str(e.label) for e in app.expander)
    assert "smoke" in text
    frames = [df.value for df in app.dataframe]
    methods = set(frames[0]["method"])
    assert methods == {"uniform", "iterative-lld", "aggregated-lld", "adjusted-lld", "distill-kl"}  # distillation beside the mixtures
    assert (frames[0]["status"] == "finished").all()


def test_runs_page_shows_the_resolved_tau_of_every_method_with_one(app):
    """runs.tau is set for aggregated-LLD too (pass 1's resolved τ; the smoke spec's τ is 1.0), shown as
    "τ used" beside the spec's "τ setting"; methods without τ show nothing, never the text "None"."""
    import math

    import pandas as pd

    frame = [df.value for df in app.dataframe][0].set_index("method")
    for m in ("iterative-lld", "aggregated-lld", "adjusted-lld"):
        assert frame.loc[m, "τ used"] == 1.0 and frame.loc[m, "τ setting"] == "1.0"
    for m in ("uniform", "distill-kl"):
        assert pd.isna(frame.loc[m, "τ setting"]) and math.isnan(frame.loc[m, "τ used"])
    assert not (frame.astype(object) == "None").any().any()


def test_compare_page_charts_carry_every_method(app):
    at = _page(app, "views/compare.py")
    specs = _chart_specs(at)
    kl_rows = _values(specs[0])
    everything = {"uniform", "iterative-lld", "aggregated-lld", "adjusted-lld", "distill-kl"}
    assert {r["label"] for r in kl_rows} == everything  # distillation beside the mixture methods
    assert all(r["bits_per_byte"] >= 0 for r in kl_rows)
    weight_sources = {r["source"] for r in _values(specs[1])}
    assert {"uniform", "aggregated-lld"} <= weight_sources
    final = at.dataframe[0].value
    assert set(final.index) == everything


def test_compare_unit_switch(app):
    at = _page(app, "views/compare.py")
    at.radio[0].set_value("nats/text").run()
    spec = _chart_specs(at)[0]
    assert spec["encoding"]["y"]["field"] == "nats_per_text"


def test_model_map_places_every_scored_model(app):
    at = _page(app, "views/model_map.py")
    points = _values(_chart_specs(at)[0])
    assert any(p["role"] == "target" for p in points)
    runs = {p["run"] for p in points if p["run"]}
    assert len(runs) == 5  # every training run draws a trajectory
    at.radio[0].set_value("t-SNE").run()
    assert not at.exception


def test_new_run_validates_and_shows_yaml(app):
    at = _page(app, "views/new_run.py")
    at.toggle[0].set_value(True).run()
    assert "methods" in at.code[0].value and "target" in at.code[0].value
    at.text_input[0].set_value("bad name!").run()
    assert any("name" in e.value for e in at.error)
    assert at.button(key="start-built").disabled


def test_recipes_page_offers_downloads(app):
    at = _page(app, "views/recipes.py")
    assert len(at.get("download_button")) == 3


def test_new_run_rejects_unparseable_multipliers(app):
    at = _page(app, "views/new_run.py")
    box = next(t for t in at.text_input if t.label.startswith("Domain multipliers"))
    box.set_value("Python=two").run()
    assert any("Domain multipliers" in e.value for e in at.error)


def test_app_on_a_database_behind_head_says_which_command(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    home = tmp_path / "empty-home"
    home.mkdir()
    monkeypatch.setenv("LLDMIX_HOME", str(home))
    monkeypatch.delenv("LLDMIX_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "lldmix db upgrade" in errors[0] and "\n" not in errors[0]
