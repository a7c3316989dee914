"""The dashboard's pages (Streamlit AppTest) on a database seeded by a real smoke run."""

import json
from pathlib import Path

import pytest

APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
pytestmark = pytest.mark.slow


def _open_app(home, monkeypatch):
    """The dashboard on the database in `home`, first page rendered."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("LLDMIX_HOME", str(home))
    monkeypatch.delenv("LLDMIX_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at


@pytest.fixture
def app(smoke_home, monkeypatch):
    return _open_app(smoke_home, monkeypatch)


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


def _model_map_table(at):
    """Compare's final model-map table (the sampled-KL table comes first when there are draws)."""
    return [df.value for df in at.dataframe if "KL (bits/byte)" in df.value.columns][0]


def _values(spec):
    return spec["_rows"]


def _color_scales(spec):
    """Every colour scale in a (possibly layered) vega-lite spec, as {domain value: colour}."""
    found = []
    for layer in spec.get("layer", [spec]):
        scale = layer.get("encoding", {}).get("color", {}).get("scale")
        if scale and "domain" in scale:
            found.append(dict(zip(scale["domain"], scale["range"])))
    return found


def _layer_with(spec, channel):
    return [layer for layer in spec.get("layer", [spec]) if channel in layer.get("encoding", {})]


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
    frame = [df.value for df in app.dataframe][0].set_index("method")
    for m in ("iterative-lld", "aggregated-lld", "adjusted-lld"):
        assert float(frame.loc[m, "τ used"]) == 1.0 and frame.loc[m, "τ setting"] == "1.0"
    for m in ("uniform", "distill-kl"):  # no τ: a dash, never "None" or "nan"
        assert frame.loc[m, "τ setting"] == "—" and frame.loc[m, "τ used"] == "—"
    assert not (frame.astype(str).isin(["None", "nan"])).any().any()


def test_compare_page_charts_carry_every_method(app):
    at = _page(app, "views/compare.py")
    specs = _chart_specs(at)
    kl_rows = [r for r in _values(specs[0]) if r.get("run")]  # the per-seed rows (the band rows carry means)
    everything = {"uniform", "iterative-lld", "aggregated-lld", "adjusted-lld", "distill-kl"}
    assert {r["label"] for r in kl_rows} == everything  # distillation beside the mixture methods
    assert all(r["bits_per_byte"] >= 0 for r in kl_rows)
    weight_methods = {r["method"] for r in _values(specs[1])}
    assert {"uniform", "aggregated-lld"} <= weight_methods
    final = _model_map_table(at)
    assert set(final.index) == everything


def test_compare_unit_switch(app):
    at = _page(app, "views/compare.py")
    at.radio[0].set_value("nats/text").run()
    spec = _chart_specs(at)[0]
    per_seed = [layer for layer in spec["layer"] if "strokeDash" in layer["encoding"]]
    assert per_seed[0]["encoding"]["y"]["field"] == "nats_per_text"


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
    from lldmix_core.recipes import FORMATS

    recipes = [e for e in at.expander if " — " in e.label]  # (the one-shot form is an expander too)
    assert len(recipes) >= 1 and len(at.get("download_button")) == len(FORMATS) * len(recipes)


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


def test_one_colour_per_method_on_every_page(app):
    from lldmix_core.methods import TARGET_COLOR, color_of

    compare = _page(app, "views/compare.py")
    compare_scales = [m for spec in _chart_specs(compare) for m in _color_scales(spec)]
    model_map = _page(app, "views/model_map.py")
    map_scales = [m for spec in _chart_specs(model_map) for m in _color_scales(spec)]
    assert compare_scales and map_scales
    for mapping in compare_scales + map_scales:  # every method-coloured chart uses the registry's colour
        for name, colour in mapping.items():
            expected = TARGET_COLOR if name in ("target", "truth") else color_of(name) if name not in ("base", "other model") else colour
            assert colour == expected, (name, colour)
    uniform = {m["uniform"] for m in compare_scales + map_scales if "uniform" in m}
    assert uniform == {color_of("uniform")}  # Compare and Model map agree on uniform's colour


def test_compare_table_shows_final_step_and_dash_for_undefined_sd(app):
    at = _page(app, "views/compare.py")
    table = _model_map_table(at)
    assert (table["final step"] == "20").all()  # runs/smoke.yaml: training.steps 20, all finished
    assert (table["sd (bits/byte)"] == "—").all()  # one seed: the sd is undefined, not "None"
    assert (table["not finished"] == "").all()


def test_model_map_legend_roles_and_tooltips(app):
    at = _page(app, "views/model_map.py")
    spec = _chart_specs(at)[0]
    points = [r for r in _values(spec) if "role" in r]
    assert all(r["series"] and r["role"] and r["name"] for r in points)  # no blank legend entries
    target = [r for r in points if r["role"] == "target"]  # the points layer and the label layer both carry it
    assert {r["name"] for r in target} == {target[0]["name"]}
    assert target[0]["series"] == "target" and target[0]["step_label"] == "target"
    assert target[0]["kl_to_target"] == pytest.approx(0.0, abs=1e-6)
    assert any(r.get("map_label", "").startswith("target: ") for r in _values(spec))  # labelled on the map
    assert {r["role"] for r in points} >= {"first checkpoint", "checkpoint", "final checkpoint"}
    assert all(r["step_label"] != "-1" for r in points)
    seeds = {r["seed"] for r in points if r["run"]}
    assert seeds == {"0"}
    shapes = _layer_with(spec, "shape")
    assert shapes and shapes[0]["encoding"]["shape"].get("legend") is not None  # the role legend is drawn
    fields = {t["field"] for t in shapes[0]["encoding"]["tooltip"]}
    assert fields == {"name", "run", "seed", "step_label", "kl_to_target"}
    sizes = shapes[0]["encoding"]["size"]["scale"]["range"]
    assert min(sizes) >= 80  # markers visible, not 1 px


def _start_disabled_with(at, label_prefix, text):
    box = next(t for t in at.text_input if t.label.startswith(label_prefix))
    box.set_value(text).run()
    return at.button(key="start-built").disabled, [e.value for e in at.error]


@pytest.mark.parametrize("box, text, says", [
    ("Domain multipliers", "Python=2 C++=2", "not `domain=factor`"),  # the missing comma
    ("Domain multipliers", "Pyton=2", "unknown domain `Pyton`"),
    ("Domain multipliers", "Python=two", "not a number"),
    ("Seeds", "0, 1, x", "'x' is not an integer"),
])
def test_new_run_bad_form_disables_start(app, box, text, says):
    at = _page(app, "views/new_run.py")
    assert not at.button(key="start-built").disabled  # the defaults are a valid spec
    disabled, errors = _start_disabled_with(at, box, text)
    assert disabled and any(says in e for e in errors), errors


def test_new_run_warns_when_methods_cannot_separate(app):
    at = _page(app, "views/new_run.py")
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Too short: 20 steps") for w in warnings)  # the form's default: 20 steps, 7 domains
    steps = next(n for n in at.number_input if n.label == "Training steps per run")
    steps.set_value(2000).run()
    assert not any(w.value.startswith("Too short") for w in at.warning)


def test_runs_page_shows_command_line_runs_in_the_queue(app):
    text = " ".join(str(e.value) for e in app.markdown)
    assert "No runs yet" not in " ".join(str(i.value) for i in app.info)
    assert "**smoke** · command line" in text
    assert [c.value for c in app.code]  # MLflow ids to copy (no tracking server in the test)


def test_lldmix_app_sigterm_frees_the_port(tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from conftest import ROOT, run_cli

    env = {**os.environ, "LLDMIX_HOME": str(tmp_path / "home"), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    run_cli("db", "upgrade", env=env)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "lldmix_core.cli", "app", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the dashboard did not come up")
        proc.send_signal(signal.SIGTERM)  # to `lldmix app` only, not its process group
        assert proc.wait(timeout=60) == 0
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing serves on the port any more
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_runs_page_says_when_a_queued_spec_had_nothing_to_compute(smoke_home, tmp_path, monkeypatch):
    import shutil

    from streamlit.testing.v1 import AppTest

    from conftest import run_cli

    home = tmp_path / "home"
    shutil.copytree(smoke_home, home)  # the session's smoke database stays as it is
    env = {"LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    run_cli("enqueue", "runs/smoke.yaml", env=env)  # the spec the smoke run already computed
    run_cli("worker", "--once", env=env)
    monkeypatch.setenv("LLDMIX_HOME", str(home))
    monkeypatch.delenv("LLDMIX_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    assert any("already computed — nothing to do" in i.value for i in at.info)


def test_compare_shows_truth_beside_estimates_and_sampled_kl_pairs(app):
    """The smoke target was trained with known weights: Compare draws them as "truth" bars beside the
    estimates (in the target's colour), and its sampled-KL table pairs every method with uniform."""
    from lldmix_core.methods import TARGET_COLOR

    at = _page(app, "views/compare.py")
    weights_chart = [s for s in _chart_specs(at) if any(r.get("source") for r in _values(s))
                     and any("weight" in r for r in _values(s))][0]
    truth = {r["domain"]: r["weight"] for r in _values(weights_chart) if r.get("method") == "truth"}
    assert truth["Python"] == pytest.approx(2 * truth["JSON"]) and sum(truth.values()) == pytest.approx(1.0)
    assert any(sc.get("truth") == TARGET_COLOR for sc in _color_scales(weights_chart))
    table = [df.value for df in at.dataframe if "sampled KL (bits/byte)" in df.value.columns][0].set_index("method")
    assert set(table.index) >= {"uniform", "iterative-lld", "aggregated-lld", "adjusted-lld", "distill-kl"}
    assert (table["sampled KL (bits/byte)"] > 0).all()
    assert float(table.loc["adjusted-lld", "− uniform (bits/byte)"]) == pytest.approx(
        table.loc["adjusted-lld", "sampled KL (bits/byte)"] - table.loc["uniform", "sampled KL (bits/byte)"], abs=2e-4)
    assert table.loc["uniform", "− uniform (bits/byte)"] == "reference"
    assert not table.astype(str).isin(["None", "nan"]).any().any()  # the reference row shows dashes, not "None"


def test_benchmark_page_shows_the_leaderboard_ratios_and_mixtures(recovery_smoke_home, monkeypatch):
    at = _page(_open_app(recovery_smoke_home, monkeypatch), "views/benchmark.py")
    assert at.selectbox[0].value == "recovery.yaml"  # the real benchmark first; not run in this home
    assert "No finished pass 1 of recovery.yaml" in at.info[0].value
    at.selectbox[0].select("recovery-smoke.yaml").run()
    assert not at.exception and not at.error
    assert "6 of 6 (target, seed) pairs finished" in at.caption[0].value
    board = at.dataframe[0].value
    assert len(board) == 16 and "paper" in board.estimator.tolist()
    assert list(board["median"]) == sorted(board["median"])  # best first
    assert all(0.0 <= x <= 1.0 for x in board["median_overlap"])  # overlap accuracy 1 − TV beside the ratios
    specs = _chart_specs(at)
    ratios, bars = specs[0], specs[1]
    points = [r for r in ratios["_rows"] if "estimator" in r]  # (the other layer is the rule at 1)
    assert len(points) == 6 * 16 and all(r["ratio"] >= 0 for r in points)
    shown = {r["series"] for r in bars["_rows"]}
    assert {"truth", "uniform", "paper"} <= shown
    truth = [r["weight"] for r in bars["_rows"] if r["series"] == "truth"]
    assert len(truth) == 9 and abs(sum(truth) - 1) < 1e-6


def test_a_phased_recipe_shows_and_downloads_its_phases(tmp_path, monkeypatch):
    """A two-stage recipe (phases in its provenance) gets its phase table and a phases download beside
    the usual formats."""
    import shutil

    from lldmix_core.config import get_settings
    from lldmix_core.db.engine import upgrade
    from lldmix_core.db.store import Store
    from lldmix_core.recipes import FORMATS

    home = tmp_path / "home"
    monkeypatch.setenv("LLDMIX_HOME", str(home))
    monkeypatch.delenv("LLDMIX_DB_URL", raising=False)
    upgrade(get_settings().db_url)
    phases = [{"until": 0.25, "weights": {"Python": 0.8, "C++": 0.2}}, {"until": 1.0, "weights": {"Python": 0.1, "C++": 0.9}}]
    Store.open(get_settings().db_url).save_recipe(name="two", method="aggregated-lld-two-stage",
                                                  weights={"Python": 0.3, "C++": 0.7}, provenance={"phases": phases})
    at = _page(_open_app(home, monkeypatch), "views/recipes.py")
    buttons = at.get("download_button")
    assert len(buttons) == len(FORMATS) + 1
    assert any("until" in df.value.columns for df in at.dataframe)
    shutil.rmtree(home, ignore_errors=True)


def test_pass2_chart_draws_each_case_with_its_interval_over_seeds(monkeypatch):
    """The Benchmark page's pass-2 chart: one point per (cell · truth, method) at its mean paired
    difference over seeds, a bar over its 95 % interval over seeds (none for a one-seed case), a rule at
    0; methods in their registry colours."""
    import sys

    import pandas as pd

    monkeypatch.syspath_prepend(str(Path(APP).parent))
    sys.modules.pop("ui_charts", None)
    import ui_charts

    from lldmix_core.methods import color_of

    df = pd.DataFrame({"case": ["S · a", "S · a", "S · b"], "method": ["fixed", "aggregated-lld", "fixed"],
                       "mean": [-0.010, 0.004, 0.001], "lo": [-0.014, 0.002, float("nan")],
                       "hi": [-0.006, 0.006, float("nan")]})
    spec = ui_charts.pass2_differences(df).to_dict()
    bars = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "rule" and "x2" in layer["encoding"])
    rows = spec["datasets"][bars["data"]["name"]]
    assert [v for r in rows for v in (r["lo"], r["hi"])] == pytest.approx([-0.014, -0.006, 0.002, 0.006])
    scale = spec["layer"][0]["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"])) == {m: color_of(m) for m in ("fixed", "aggregated-lld")}
    assert any(layer["mark"]["type"] == "rule" and layer["encoding"]["x"]["field"] == "x" for layer in spec["layer"])


def test_new_run_refuses_an_implausible_spec_with_the_clis_line(app, monkeypatch):
    """The dashboard enqueues by the CLI's path (lldmix_core/enqueue.py): plausibility included. With the
    step limit lowered below the form's 20 steps, Start shows the line `lldmix enqueue` prints and queues
    nothing."""
    from lldmix_core import limits
    from lldmix_core.enqueue import checked_spec
    from lldmix_core.errors import UserError

    import ui_data as data

    at = _page(app, "views/new_run.py")
    before = len(data.store().list_jobs())
    monkeypatch.setattr(limits, "MAX_STEPS", 10)
    at.toggle[0].set_value(True).run()  # "Show as YAML": the exact spec Start would queue
    spec_yaml = at.code[0].value
    with pytest.raises(UserError) as cli:
        checked_spec(data.store(), spec_yaml)
    at.button(key="start-built").click().run()
    assert [e.value for e in at.error] == [str(cli.value)]
    assert str(cli.value) == "spec: training.steps: 20 steps is beyond 10 (pass --yes-i-mean-it to run it anyway)"
    assert len(data.store().list_jobs()) == before and not at.success


def test_the_worker_reapplies_the_checks_to_a_job_queued_around_them(tmp_path, monkeypatch):
    """A job written into the queue table directly (not through enqueue_spec) is checked again by the
    worker: an implausible one fails with the plausibility line, before anything is trained."""
    from lldmix_core import limits
    from lldmix_core.queue import run_job
    from conftest import fresh_home

    with fresh_home(tmp_path / "home") as (_, store):
        text = (Path(APP).parents[1] / "runs" / "smoke.yaml").read_text(encoding="utf-8")
        from lldmix_core.spec import load_spec_text

        spec = load_spec_text(text, "spec")
        job_id = store.enqueue(name=spec.name, spec_yaml=text, spec_hash=spec.spec_hash)
        monkeypatch.setattr(limits, "MAX_STEPS", 1)
        assert run_job(store, store.get_job(job_id)) == "failed"
        job = store.get_job(job_id)
        assert job.error == f"job {job_id}: training.steps: {spec.training.steps:,} steps is beyond 1 (pass --yes-i-mean-it to run it anyway)"
        assert store.list_runs() == []  # nothing started
