"""Many workers on one database at once, with the dashboard reading: 4 on SQLite, 8 on PostgreSQL.

Every job finishes, no "database is locked", every run's rows are complete, no job is taken twice,
and stages shared between jobs (the corpus, the trained target, a run two jobs both ask for) are
computed once."""

import os
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT
from test_db import _fresh_pg_url, need_pg

pytestmark = pytest.mark.slow

SPEC = """name: conc-{i}
seeds: [{seed}]
tokenizer: bytes
corpus: {{local: true, eval_per_domain: 2}}
arch: {{n_layer: 1, n_head: 2, n_embd: 16, block_size: 32}}
target:
  train: {{steps: 8, seed: 1234, multipliers: {{Python: 2.0}}}}
training: {{steps: 6, batch_size: 2, lr: 3.0e-3, warmup_steps: 1, checkpoint_every: 3}}
methods: [uniform, iterative-lld]
kl: {{sampled: {{n_samples: 16, n_tokens: 32}}}}
tracking: {{mlflow: {mlflow}}}
"""


def _spec(i: int, mlflow: bool) -> str:
    # jobs 0 and 1 are the same spec (same runs): one worker computes them, the other waits and finds them
    return SPEC.format(i=max(i, 1) if i <= 1 else i, seed=max(i, 1) if i <= 1 else i, mlflow=str(mlflow).lower())


@pytest.mark.parametrize("backend,n_workers,n_jobs", [("sqlite", 4, 6), ("postgresql", 8, 10)])
def test_workers_in_parallel_with_the_app_reading(tmp_path, backend, n_workers, n_jobs, monkeypatch):
    home = tmp_path / "home"
    env = {**os.environ, "LLDMIX_HOME": str(home), "MLFLOW_TRACKING_URI": ""}
    env["LLDMIX_DB_URL"] = _fresh_pg_url(need_pg()) if backend == "postgresql" else ""
    for k in ("LLDMIX_HOME", "LLDMIX_DB_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.setenv(k, env[k])
    cli = [sys.executable, "-m", "lldmix_core.cli"]
    subprocess.run([*cli, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)

    from lldmix_core.config import get_settings
    from lldmix_core.db.store import Store
    from lldmix_core.queue import enqueue_spec

    store = Store.open(get_settings().db_url)
    job_ids = [enqueue_spec(store, _spec(i, mlflow=backend == "sqlite")) for i in range(n_jobs)]

    # the app reads while the workers write: the same queries the Runs and Compare pages make
    from app import ui_data

    errors, reads = [], [0]
    stop = threading.Event()

    def read_like_the_app():
        while not stop.is_set():
            try:
                v = ui_data.version()
                ui_data.jobs(v)
                runs = ui_data.runs(v)
                for pid in runs[runs.method == "spec"].id.tolist()[:3] if len(runs) else []:
                    ui_data.kl_rows(int(pid), v)
                ui_data.models(v)
                reads[0] += 1
            except Exception as e:  # noqa: BLE001 — any failure of a read is the finding
                errors.append(repr(e))
            time.sleep(0.2)

    reader = threading.Thread(target=read_like_the_app, daemon=True)
    reader.start()
    workers = [subprocess.Popen([*cli, "worker", "--poll", "0.5", "--idle-exit", "8"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(n_workers)]
    outs = [w.communicate(timeout=900)[0] for w in workers]
    stop.set()
    reader.join(timeout=30)

    assert all(w.returncode == 0 for w in workers), "\n".join(outs)
    assert not any("database is locked" in o for o in outs), "\n".join(outs)
    assert errors == [], errors[:3]
    assert reads[0] > 0
    jobs = {j.id: j for j in store.list_jobs()}
    not_finished = [(i, jobs[i].status, jobs[i].error) for i in job_ids if jobs[i].status != "finished"]
    assert not_finished == [], (not_finished, "\n".join(outs))
    # each job was taken once: the worker that ran it is recorded, and the job counts add up
    ran = sum(int(o.strip().splitlines()[-1].split()[2]) for o in outs)
    assert ran == n_jobs
    # every run's rows are complete: 2 evaluation rows of KL and weights at each eval step
    runs = [r for r in store.list_runs() if r.method != "spec"]
    assert len(runs) == 2 * (n_jobs - 1)  # jobs 0 and 1 share their runs
    assert all(r.status == "finished" for r in runs)
    for r in runs:
        kl_steps = [k.step for k in store.get_kl(r.id) if k.estimator.startswith("modelmap")]
        assert kl_steps == sorted(set(kl_steps)) and kl_steps[-1] == 6 and len(kl_steps) >= 2, (r.name, kl_steps)
        assert sorted(store.get_weights(r.id)) == kl_steps
    # shared stages computed once: one corpus, one target, all stages finished
    assert len([c for c in store.list_corpora() if c.settings.get("kind") != "target-samples"]) == 1
    assert len([m for m in store.list_models() if ".target." in m.name]) == 1
    from sqlalchemy import text

    with store.transaction() as s:
        assert s.execute(text("SELECT count(*) FROM stages WHERE status != 'finished'")).scalar() == 0
        assert s.execute(text("SELECT count(*) FROM stages WHERE kind = 'train-target'")).scalar() == 1
