"""SIGKILL at MLflow's first initialisation and at five other points of one run whose domain names are
hostile ("a/../b", "x y", "C++", "日本") and whose MLflow experiment name tries to leave the home; then
a clean re-run reaches the same final table, weights and recipe as an uninterrupted run, with complete
metric histories (every training step once) in SQL and in MLflow. One home is reused across the kill
points (each run resumes what the previous one left), so the test costs about three short runs."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_resume import assert_same_rows
from conftest import ROOT

pytestmark = pytest.mark.slow

DOMAINS = ["a/../b", "x y", "C++", "日本"]
STEPS = 6
SPEC = f"""name: hostile-kill
seeds: [0]
tokenizer: bytes
corpus: {{train: data/hostile.jsonl, eval_per_domain: 2}}
arch: {{n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}}
target:
  train: {{steps: {STEPS}, seed: 1, multipliers: {{"C++": 3.0, "日本": 2.0}}}}
training: {{steps: {STEPS}, batch_size: 2, warmup_steps: 1, checkpoint_every: 2}}
methods: [uniform, iterative-lld, aggregated-lld]
kl: {{sampled: {{n_samples: 16, n_tokens: 32}}}}
tracking: {{mlflow: true, experiment: "../../escape"}}
"""
KILLS = ["mlflow_init:1", "train_step:3", "score_batch:2", "db_commit:6", "train_step:5", "file_write:2"]


def _home(root: Path) -> tuple[Path, dict]:
    home = root / "home"
    (home / "data").mkdir(parents=True)
    r = random.Random(0)
    with open(home / "data" / "hostile.jsonl", "w", encoding="utf-8") as f:
        for i, d in enumerate(DOMAINS):
            for _ in range(6):
                words = " ".join(r.choice(["alpha", "beta", "γάμμα", "delta", "{}", "int x;", "日本語"]) + str(i)
                                 for _ in range(120))
                f.write(json.dumps({"text": words, "meta": {"pile_set_name": d}}, ensure_ascii=False) + "\n")
    (root / "spec.yaml").write_text(SPEC, encoding="utf-8")
    env = {**os.environ, "LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": "",
           "PYTHONPATH": str(ROOT), "LLDMIX_FAULT": ""}
    return home, env


def _cli(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "lldmix_core.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900, **kw)


def _finals(home: Path):
    con = sqlite3.connect(home / "lldmix.db")
    try:
        kl = con.execute("""SELECT r.method, k.step, k.estimator, k.nats_per_text, k.bits_per_byte,
                            k.stderr_bits_per_byte FROM kl_results k
                            JOIN runs r ON r.id = k.run_id ORDER BY r.method, k.step, k.estimator""").fetchall()
        weights = con.execute("""SELECT r.method, w.step, d.name, w.weight FROM weight_estimates w
                                 JOIN runs r ON r.id = w.run_id JOIN domains d ON d.id = w.domain_id
                                 ORDER BY r.method, w.step, d.name""").fetchall()
        recipes = con.execute("SELECT name, weights FROM recipes ORDER BY name").fetchall()
    finally:
        con.close()
    return kl, weights, recipes


def _check_histories(home: Path) -> None:
    """Every method run has train_loss and lr at each step 0..STEPS-1, once, in SQL and in MLflow."""
    con = sqlite3.connect(home / "lldmix.db")
    runs = con.execute("SELECT id, mlflow_run_id FROM runs WHERE method != 'spec'").fetchall()
    assert len(runs) == 3
    ml = sqlite3.connect(home / "mlflow.db")
    for run_id, mlflow_id in runs:
        for key in ("train_loss", "lr"):
            steps = [s for (s,) in con.execute("SELECT step FROM run_metrics WHERE run_id = ? AND key = ? ORDER BY step",
                                               (run_id, key))]
            assert steps == list(range(STEPS)), (run_id, key, steps)
            assert mlflow_id
            ml_steps = [s for (s,) in ml.execute("SELECT step FROM metrics WHERE run_uuid = ? AND key = ? ORDER BY step",
                                                 (mlflow_id, key))]
            assert ml_steps == list(range(STEPS)), (mlflow_id, key, ml_steps)
        dup = ml.execute("SELECT key, step, count(*) c FROM metrics WHERE run_uuid = ? GROUP BY key, step HAVING c > 1",
                         (mlflow_id,)).fetchall()
        assert dup == [], dup  # KL, weights and loglik points once each
        keys = {k for (k,) in ml.execute("SELECT DISTINCT key FROM metrics WHERE run_uuid = ?", (mlflow_id,))}
        assert all(".." not in k.split("/") for k in keys)
    con.close()
    ml.close()


def test_kills_then_rerun_match_uninterrupted_with_complete_histories(tmp_path):
    ref_home, ref_env = _home(tmp_path / "ref")
    assert _cli(["db", "upgrade"], ref_env).returncode == 0
    done = _cli(["run", str(tmp_path / "ref" / "spec.yaml")], ref_env)
    assert done.returncode == 0, done.stderr[-3000:]

    home, env = _home(tmp_path / "kill")
    spec = str(tmp_path / "kill" / "spec.yaml")
    assert _cli(["db", "upgrade"], env).returncode == 0
    for fault in KILLS:
        proc = _cli(["run", spec], {**env, "LLDMIX_FAULT": fault})
        assert proc.returncode == -signal.SIGKILL, (fault, proc.returncode, proc.stderr[-3000:])
        if fault.startswith("mlflow_init"):  # killed with MLflow's store complete under its temp name only
            assert not (home / "mlflow.db").exists()
    proc = _cli(["run", spec], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (kl, weights, recipes), (kl_ref, weights_ref, recipes_ref) = _finals(home), _finals(ref_home)
    # labels exactly, numbers to 1e-5 relative (why: test_resume.assert_same_finals)
    assert_same_rows(kl, kl_ref, n_labels=3)
    assert_same_rows(weights, weights_ref, n_labels=3)
    assert [n for n, _ in recipes] == [n for n, _ in recipes_ref]
    for (name, w), (_, w_ref) in zip(recipes, recipes_ref):
        assert json.loads(w) == pytest.approx(json.loads(w_ref), rel=1e-5, abs=1e-9), name
    _check_histories(home)
    _check_histories(ref_home)
    # the experiment name "../../escape" stayed inside the home
    assert sorted(p.name for p in (tmp_path / "kill").iterdir()) == ["home", "spec.yaml"]
    assert [p.name for p in (home / "mlartifacts").iterdir()][0].startswith("escape-")

    # a flipped bit in a stored KL value: refused on the next run, before anything is written
    con = sqlite3.connect(home / "lldmix.db")
    con.execute("UPDATE kl_results SET nats_per_text = nats_per_text * 2 WHERE id = (SELECT max(id) FROM kl_results)")
    con.commit()
    con.close()
    before = {p.name: p.read_bytes() for p in home.glob("*.db")}
    proc = _cli(["run", spec], env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-3000:]
    assert "kl_results row" in proc.stderr and "fails its checksum" in proc.stderr
    assert {p.name: p.read_bytes() for p in home.glob("*.db")} == before


def test_kill_during_mlflow_store_creation_then_resume(tmp_path):
    """SIGKILL while MLflow creates and migrates its SQLite store (timed on its temp file): the next
    first contact builds it and works. A store half-created by an older version is moved aside."""
    db = tmp_path / "mlflow.db"
    code = ("import sys; from pathlib import Path; from lldmix_core.tracking import ensure_sqlite_store; "
            f"ensure_sqlite_store('sqlite:///{db}', Path('{tmp_path}') / 'mlartifacts')")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(tmp_path.glob(".mlflow.db.init-*")):
        time.sleep(0.01)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if killed:
        assert not db.exists()  # never a half-made mlflow.db
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    assert db.is_file() and not list(tmp_path.glob(".mlflow.db.init-*"))

    # an older version's half-created store (tables, no migration record, no runs): repaired
    half = tmp_path / "half"
    half.mkdir()
    con = sqlite3.connect(half / "mlflow.db")
    con.execute("CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY)")
    con.execute("CREATE TABLE datasets (dataset_uuid TEXT)")
    con.commit()
    con.close()
    code = ("from pathlib import Path; from lldmix_core.tracking import MlflowTracker; "
            f"t = MlflowTracker('sqlite:///{half / 'mlflow.db'}', 'e', Path('{half}') / 'mlartifacts'); "
            "r = t.start_parent('p', {'a': 1}); t.log_metrics(r, {'kl/a/../b': 1.0}, 0); t.end(r); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
    assert "half-created" in out.stderr
    assert len(list(half.glob("mlflow.db.half-created-*"))) == 1
