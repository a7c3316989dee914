"""The engine end to end on the smoke spec: results in SQL and MLflow, re-runs do nothing, exact resume."""

import sqlite3

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow


def test_smoke_run_results_are_in_sql(smoke_home):
    con = sqlite3.connect(smoke_home / "lldmix.db")
    methods = dict(con.execute("SELECT method, status FROM runs WHERE method != 'spec'").fetchall())
    assert methods == {m: "finished" for m in ["uniform", "iterative-lld", "aggregated-lld", "adjusted-lld", "distill-kl"]}
    finals = con.execute("""SELECT r.method, k.nats_per_text, k.bits_per_byte FROM kl_results k JOIN runs r ON r.id = k.run_id
                            WHERE k.step = 20 AND k.estimator = 'modelmap'""").fetchall()
    assert len(finals) == 5 and all(kl >= 0 and bpb >= 0 for _, kl, bpb in finals)
    # and the sampled KL beside it: one per run, with its standard error over the draws
    sampled = con.execute("""SELECT k.bits_per_byte, k.stderr_bits_per_byte, k.n_samples FROM kl_results k
                             WHERE k.step = 20 AND k.estimator = 'sampled'""").fetchall()
    assert len(sampled) == 5 and all(se > 0 and n == 64 for _, se, n in sampled)  # runs/smoke.yaml's kl.sampled
    # weights on the simplex at every recorded step
    for run_id, step, total in con.execute("SELECT run_id, step, sum(weight) FROM weight_estimates GROUP BY run_id, step"):
        assert abs(total - 1) < 1e-6
    recipe = con.execute("SELECT weights FROM recipes WHERE name = 'smoke.aggregated-lld.seed0'").fetchone()
    assert recipe is not None
    # checkpoints are models, with their run and step
    assert con.execute("SELECT count(*) FROM models WHERE run_id IS NOT NULL AND step = 0").fetchone()[0] == 5
    # every run points at its MLflow run
    assert con.execute("SELECT count(*) FROM runs WHERE mlflow_run_id IS NULL").fetchone()[0] == 0


def test_mlflow_has_the_runs(smoke_home):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{smoke_home / 'mlflow.db'}")
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert {r.data.params["method"] for r in children} == {"uniform", "iterative-lld", "aggregated-lld", "adjusted-lld",
                                                           "distill-kl"}
    hist = client.get_metric_history(children[0].info.run_id, "kl_bits_per_byte")
    assert len(hist) >= 10
    agg = [r for r in children if r.data.params["method"] == "aggregated-lld"][0]
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{smoke_home / 'mlflow.db'}")
    recipe = mlflow.artifacts.load_dict(f"runs:/{agg.info.run_id}/recipes/recipe.json")
    assert abs(sum(recipe["weights"].values()) - 1) < 1e-9


def test_rerun_does_no_training_and_no_scoring(smoke_home):
    out = run_cli("run", "runs/smoke.yaml", env={"LLDMIX_HOME": str(smoke_home)})
    # the finished spec is reported from the database: not even the target is loaded (engine/found.py)
    assert out.stdout.count("finished earlier") == 5 and "found finished in the database" in out.stdout
    assert "training NanoGPT" not in out.stdout
    assert "step      0:" not in out.stdout  # no evaluation (scoring) happened


def test_recipe_export_formats(smoke_home, tmp_path):
    import json
    import yaml

    env = {"LLDMIX_HOME": str(smoke_home)}
    for fmt in ("json", "yaml", "csv", "hf", "mosaic", "olmo"):
        out = tmp_path / f"r.{fmt}"
        run_cli("recipe", "export", "smoke.aggregated-lld.seed0", "--format", fmt, "--out", str(out), env=env)
        assert out.stat().st_size > 0
    w = json.loads((tmp_path / "r.json").read_text())["weights"]
    assert abs(sum(w.values()) - 1) < 1e-9 and yaml.safe_load((tmp_path / "r.yaml").read_text())["weights"] == w
    rows = [l.split(",") for l in (tmp_path / "r.csv").read_text().splitlines() if not l.startswith("#")][1:]
    assert {d: float(v) for d, v in rows} == pytest.approx(w)
    assert [s["target_ratio"] for s in yaml.safe_load((tmp_path / "r.olmo").read_text())["sources"]] == list(w.values())


def test_first_pass_on_a_subsample_reweights_at_every_schedule_step(tmp_path):
    """lld.estimate_texts_per_domain: Δ from a subsample at the schedule steps (weights recorded at
    each), KL on the whole corpus only at eval_steps and the last step."""
    from lldmix_core.mathcore import lld_schedule

    home = tmp_path / "home"
    env = {"LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    spec = tmp_path / "sub.yaml"
    spec.write_text("""name: sub
seeds: [0]
tokenizer: bytes
corpus: {local: true, eval_per_domain: 3}
arch: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}
target: {train: {steps: 6, seed: 1234, multipliers: {Python: 2.0}}}
training: {steps: 20, batch_size: 2, warmup_steps: 1}
eval_steps: [10]
methods: [iterative-lld]
lld: {tau: 1.0, estimate_texts_per_domain: 1}
""")
    run_cli("db", "upgrade", env=env)
    run_cli("run", str(spec), "--no-mlflow", env=env)
    con = sqlite3.connect(home / "lldmix.db")
    kl_steps = [s for (s,) in con.execute("SELECT step FROM kl_results WHERE estimator = 'modelmap' ORDER BY step")]
    w_steps = sorted({s for (s,) in con.execute("SELECT step FROM weight_estimates")})
    assert kl_steps == [10, 20]
    assert w_steps == sorted(set(lld_schedule(20)) | {10, 20})
    # the weights moved away from uniform at the first estimate: they were really re-estimated
    first = [w for (w,) in con.execute("SELECT weight FROM weight_estimates WHERE step = 0")]
    assert max(first) - min(first) > 1e-3 and abs(sum(first) - 1) < 1e-9


def test_results_document_is_generated_from_the_database(smoke_home, tmp_path):
    """`lldmix results` on a finished spec: nothing is retrained, the document's sampled-KL cells are
    the stored final rows, every run's commit is named, and a missing --out folder is a one-line error
    that writes nothing."""
    import re
    import shutil

    home = tmp_path / "home"
    shutil.copytree(smoke_home, home)
    env = {"LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    out = tmp_path / "RESULTS.md"
    proc = run_cli("results", "runs/smoke.yaml", "--out", str(out), "--agreement-samples", "8", env=env)
    log = proc.stdout + proc.stderr
    assert "finished earlier" in log and not re.search(r"training (NanoGPT|\d+ steps)", log)
    doc = out.read_text()
    con = sqlite3.connect(home / "lldmix.db")
    rows = con.execute("""SELECT r.method, k.bits_per_byte, k.stderr_bits_per_byte, r.git_commit FROM kl_results k
                          JOIN runs r ON r.id = k.run_id WHERE k.estimator = 'sampled' AND k.step = 20""").fetchall()
    assert len(rows) == 5
    for method, bpb, se, commit in rows:
        assert re.search(rf"^\| {re.escape(method)} \| {bpb:.4f} ± {se:.4f} \|", doc, re.M), method
        assert commit is None or commit[:10] in doc
    assert "## Do the two estimators agree?" in doc and "Spearman" in doc
    assert "One seed only" in doc  # one seed: no claim over initial models
    bad = run_cli("results", "runs/smoke.yaml", "--out", str(tmp_path / "nope" / "R.md"), env=env, check=False)
    assert bad.returncode == 2 and "--out" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "nope").exists()
