"""Faults at chosen points: SIGKILL during a training step, a checkpoint save, scoring and a database
commit, and a full disk while saving a checkpoint. Each time, running the same spec again picks up
where it stopped; the end state equals an uninterrupted run with the same seed."""

import errno
import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli
from test_resume import assert_same_finals

pytestmark = pytest.mark.slow

# (fault, expected return code): -9 is SIGKILL, 2 is a UserError. The order matters: each link
# resumes the previous one, so the points are reached in different stages of the same spec.
CHAIN = [
    ("train_step:7", -signal.SIGKILL),   # the target's 7th step: before its first checkpoint
    ("file_write:1", -signal.SIGKILL),   # mid-write of the target's step-10 checkpoint
    ("file_write:1:enospc", 2),          # the disk fills while writing that checkpoint again
    ("train_step:25", -signal.SIGKILL),  # the target resumes at step 10 and finishes: a method's step
    ("score_batch:3", -signal.SIGKILL),  # scoring a model (the target, or a run's evaluation)
    ("train_step:33", -signal.SIGKILL),  # inside the methods' runs
    ("db_commit:40", -signal.SIGKILL),   # a transaction with its writes sent, before COMMIT
    ("db_commit:12", -signal.SIGKILL),
]


def _run(env, fault):
    proc = subprocess.run([sys.executable, "-m", "lldmix_core.cli", "run", "runs/smoke.yaml", "--no-mlflow"], cwd=ROOT,
                          env={**env, "LLDMIX_FAULT": fault}, capture_output=True, text=True, timeout=900)
    return proc


def _temp_files(home):
    return sorted(p for p in home.rglob(".*.tmp-*"))


def test_kill_chain_then_finish_equals_uninterrupted(smoke_home, tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    run_cli("db", "upgrade", env=env)
    survived = 0
    for fault, want in CHAIN:
        proc = _run(env, fault)
        assert proc.returncode == want, f"{fault}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        if fault == "file_write:1":
            # the kill came mid-save: a half-written temp file, and no checkpoint under the real name
            temps = _temp_files(home)
            assert temps and all(t.parent.name.startswith("target-") for t in temps), temps
            assert not (temps[0].parent / "last.pt").exists()
        if want == 2:
            lines = [l for l in proc.stderr.splitlines() if l.strip()]
            assert len(lines) == 1 and "no space left" in lines[0] and "last.pt" in lines[0], proc.stderr
            assert _temp_files(home) == []  # the failed writer removed its own temp file
        survived += 1
    proc = _run(env, "")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert survived == len(CHAIN)
    assert_same_finals(home, smoke_home)
    assert _temp_files(home) == []  # temp files of killed writers were swept on the next save
    con = sqlite3.connect(home / "lldmix.db")
    q = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
    assert q("PRAGMA integrity_check") == "ok"
    assert q("SELECT count(*) FROM runs WHERE status != 'finished'") == 0
    assert q("SELECT count(*) FROM stages WHERE status != 'finished'") == 0
    # no duplicated rows
    assert q("SELECT count(*) FROM (SELECT run_id, step, estimator, count(*) c FROM kl_results "
             "GROUP BY run_id, step, estimator HAVING c > 1)") == 0
    assert q("SELECT count(*) FROM (SELECT name, count(*) c FROM models GROUP BY name HAVING c > 1)") == 0
    assert q("SELECT count(*) FROM corpora WHERE name NOT LIKE 'samples:%'") == 1  # + the draws of the sampled KL
    # no orphans: every evaluated model belongs to a run that has KL rows at its step
    assert q("""SELECT count(*) FROM models m WHERE m.run_id IS NOT NULL AND NOT EXISTS
                (SELECT 1 FROM kl_results k WHERE k.model_id = m.id)""") == 0
    assert q("""SELECT count(*) FROM loglik_vectors v WHERE NOT EXISTS
                (SELECT 1 FROM domain_logliks d WHERE d.model_id = v.model_id AND d.corpus_id = v.corpus_id)""") == 0
    # every checkpoint on disk verifies against its checksum
    from lldmix_core.checkpoint import load_checkpoint

    ckpts = list(home.rglob("*.pt"))
    assert ckpts
    for c in ckpts:
        load_checkpoint(c)


def test_full_disk_leaves_the_old_file(tmp_path, monkeypatch):
    from lldmix_core import atomic
    from lldmix_core.errors import UserError

    target = tmp_path / "x.bin"
    atomic.atomic_write_bytes(target, b"old contents")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(UserError, match=r"x\.bin: no space left"):
        atomic.atomic_write_bytes(target, b"new contents" * 1000)
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]
