"""The smaller breaks of issue 24 (item 6): each a one-line error, or a documented normalisation,
with nothing half written."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import unicodedata

import pytest

from conftest import ROOT, run_cli
from lldmix_core.corpus.records import MAX_DOMAIN_CHARS, iter_records
from lldmix_core.errors import SchemaBehindError, UserError


def _jsonl(path, domains):
    path.write_text("".join(json.dumps({"text": f"text {i}", "meta": {"pile_set_name": d}}) + "\n"
                            for i, d in enumerate(domains)), encoding="utf-8")
    return path


def test_a_domain_name_too_long_for_mlflow_is_refused_when_read(tmp_path):
    f = _jsonl(tmp_path / "long.jsonl", ["Python", "x" * 251])
    with pytest.raises(UserError) as info:
        list(iter_records(f))
    assert str(info.value) == (f"{f}:2: domain name of 251 characters is longer than {MAX_DOMAIN_CHARS} "
                               "(domain names become MLflow metric keys, at most 250 characters)")
    assert [d for d, _ in iter_records(_jsonl(tmp_path / "ok.jsonl", ["y" * MAX_DOMAIN_CHARS]))] == ["y" * 200]


def test_domain_names_equal_after_nfc_are_one_domain(tmp_path):
    composed, decomposed = "Caf\u00e9", "Cafe\u0301"
    assert composed != decomposed and unicodedata.normalize("NFC", decomposed) == composed
    f = _jsonl(tmp_path / "cafe.jsonl", [composed, decomposed])
    assert [d for d, _ in iter_records(f)] == [composed, composed]


def test_commands_before_db_upgrade_create_nothing(tmp_path, monkeypatch):
    from lldmix_core.db.store import Store

    home = tmp_path / "not-yet"
    monkeypatch.setenv("LLDMIX_HOME", str(home))
    monkeypatch.delenv("LLDMIX_DB_URL", raising=False)
    with pytest.raises(SchemaBehindError, match=r"is empty \(no schema\), code expects .*: run `lldmix db upgrade`"):
        Store.open()
    assert not home.exists()  # neither the home nor an empty database file
    proc = run_cli("db", "current", env={"LLDMIX_HOME": str(home)})
    assert "None (no database file yet)" in proc.stdout and not home.exists()


def test_app_with_a_host_that_is_not_one_is_one_line(tmp_path):
    proc = run_cli("app", "--host", "not a host", "--port", "8599", check=False,
                   env={"LLDMIX_HOME": str(tmp_path / "home")})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: --host 'not a host': not an address or a host name")


def test_sigterm_stops_at_a_step_boundary_in_one_line_and_marks_the_run_stopped(tmp_path):
    home = tmp_path / "home"
    env = {"LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
    run_cli("db", "upgrade", env=env)
    # the fault point sends SIGTERM to the process during the target's 2nd training step
    proc = subprocess.run([sys.executable, "-m", "lldmix_core.cli", "run", "runs/smoke.yaml", "--no-mlflow"],
                          cwd=ROOT, env={**os.environ, **env, "LLDMIX_FAULT": "train_step:2:term"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == ["error: stopped at step 2; rerun to resume"]
    with sqlite3.connect(home / "lldmix.db") as db:
        runs = db.execute("SELECT status, error FROM runs").fetchall()
        claims = db.execute("SELECT COUNT(*) FROM stages WHERE status = 'running'").fetchone()[0]
    assert runs == [("stopped", "stopped at step 2")] and claims == 0  # nothing left "running"
    assert list(home.glob("checkpoints/target-*/last.pt"))  # where the rerun resumes
    assert not list(home.rglob(".*.tmp-*"))


def test_reading_parquet_caches_under_lldmix_home(home, tmp_path):
    import pandas as pd

    f = tmp_path / "c.parquet"
    pd.DataFrame({"text": ["one", "two"], "meta": [{"pile_set_name": "A"}, {"pile_set_name": "B"}]}).to_parquet(f)
    assert list(iter_records(f, streaming=False)) == [("A", "one"), ("B", "two")]
    assert any((home / "cache" / "datasets").rglob("*.arrow"))  # datasets' cache, inside the home


def test_recipes_page_says_in_one_line_when_domains_clash_as_folder_names(store, home):
    from streamlit.testing.v1 import AppTest

    from lldmix_core.recipes import FORMATS, TRAINER_FORMATS

    store.save_recipe(name="clash", method="fixed", weights={"C++": 0.5, "C__": 0.5}, provenance={})
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.run()
    at.switch_page("views/recipes.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == len(TRAINER_FORMATS)
    assert all("two domains share a data folder name" in e and "\n" not in e for e in errors)
    assert len(at.get("download_button")) == len(FORMATS) - len(TRAINER_FORMATS)  # json, yaml, csv still offered
