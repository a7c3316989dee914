"""Kill a run with SIGKILL and start it again: it finishes with the same numbers as an uninterrupted run."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_cli

pytestmark = pytest.mark.slow


def _finals(home):
    con = sqlite3.connect(home / "lldmix.db")
    rows = con.execute("""SELECT r.method, k.estimator, k.nats_per_text, k.bits_per_byte, k.stderr_bits_per_byte
                          FROM kl_results k JOIN runs r ON r.id = k.run_id
                          WHERE k.step = (SELECT max(step) FROM kl_results WHERE run_id = r.id)
                          ORDER BY r.method, k.estimator""").fetchall()
    weights = con.execute("""SELECT r.method, w.step, d.name, w.weight FROM weight_estimates w JOIN runs r ON r.id = w.run_id
                             JOIN domains d ON d.id = w.domain_id ORDER BY r.method, w.step, d.name""").fetchall()
    return rows, weights


def _count(home, sql):
    try:
        with sqlite3.connect(home / "lldmix.db", timeout=30) as con:
            return con.execute(sql).fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("kill_after_kl_rows", [3, 27])
def test_sigkill_then_rerun_matches_uninterrupted(smoke_home, tmp_path, kill_after_kl_rows):
    home = tmp_path / "home"
    env = {**os.environ, "LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    run_cli("db", "upgrade", env=env)
    proc = subprocess.Popen([sys.executable, "-m", "lldmix_core.cli", "run", "runs/smoke.yaml"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if _count(home, "SELECT count(*) FROM kl_results") >= kill_after_kl_rows:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the kill point"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_cli("run", "runs/smoke.yaml", env=env)
    assert _finals(home) == _finals(smoke_home)
    # no duplicated rows: one KL row per run and step, one weight row per run, step and domain
    assert _count(home, "SELECT count(*) FROM (SELECT run_id, step, estimator, count(*) c FROM kl_results "
                        "GROUP BY run_id, step, estimator HAVING c > 1)") == 0
    assert _count(home, "SELECT count(*) FROM runs WHERE status != 'finished'") == 0
