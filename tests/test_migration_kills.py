"""A killed `lldmix db upgrade` never wedges the database (issue 24, item 2): each revision's schema
changes and version stamp commit together, so after any kill the database is exactly at a known
revision, the next upgrade succeeds and no row is lost; concurrent upgrades wait for each other."""

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

from conftest import ROOT
from lldmix_core.db.engine import head_revision, upgrade

REVISIONS = ["0001", "0002", "0003", "0004", "0005"]


def _upgrade_cmd(home: Path, fault: str = "") -> tuple[list[str], dict]:
    env = {**os.environ, "LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "LLDMIX_FAULT": fault}
    return [sys.executable, "-m", "lldmix_core.cli", "db", "upgrade"], env


def _run_upgrade(home: Path, fault: str = "") -> subprocess.CompletedProcess:
    cmd, env = _upgrade_cmd(home, fault)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _schema(db: Path) -> tuple[str | None, dict]:
    """(revision, {table: [columns]}) of a SQLite file, Alembic's own tables left out."""
    with sqlite3.connect(db) as c:
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        stamped = "alembic_version" in tables
        rev = c.execute("SELECT version_num FROM alembic_version").fetchone()[0] if stamped else None
        cols = {t: [r[1] for r in c.execute(f"PRAGMA table_info('{t}')")] for t in tables
                if t != "alembic_version" and not t.startswith("_alembic_tmp")}
        leftovers = [t for t in tables if t.startswith("_alembic_tmp")]
    assert not leftovers, leftovers
    return rev, cols


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The schema at every revision, from clean in-process upgrades."""
    folder = tmp_path_factory.mktemp("reference")
    out = {None: {}}
    for rev in REVISIONS:
        db = folder / f"{rev}.db"
        upgrade(f"sqlite:///{db}", rev)
        out[rev] = _schema(db)[1]
    return out


def _assert_exactly_at_a_revision(db: Path, reference: dict, context: str) -> str | None:
    rev, cols = _schema(db) if db.exists() else (None, {})
    assert cols == reference[rev], f"{context}: schema is not revision {rev}'s (a half-applied revision)"
    return rev


def test_kill_before_each_revision_commits_then_upgrade(tmp_path, reference):
    """Kill point `migrate`: a revision's changes and stamp sent, COMMIT not. Each run commits one
    revision and dies in the next, so every revision is killed once, fresh database first."""
    home = tmp_path / "home"
    proc = _run_upgrade(home, "migrate:1")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _assert_exactly_at_a_revision(home / "lldmix.db", reference, "killed in 0001") is None
    for before in REVISIONS[:-1]:
        proc = _run_upgrade(home, "migrate:2")
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        assert _assert_exactly_at_a_revision(home / "lldmix.db", reference, f"after {before}") == before
    proc = _run_upgrade(home)
    assert proc.returncode == 0, proc.stderr
    assert _schema(home / "lldmix.db") == (head_revision(), reference[head_revision()])


def test_kill_during_0005_on_a_database_with_data_loses_nothing(tmp_path, reference):
    home = tmp_path / "home"
    home.mkdir()
    db = home / "lldmix.db"
    upgrade(f"sqlite:///{db}", "0004")
    rows = [(f"r{i}", "fixed", json.dumps({"A": 0.25 * i, "B": 1 - 0.25 * i}), json.dumps({"i": i}),
             "2026-12-01 00:00:00") for i in range(4)]
    with sqlite3.connect(db) as c:
        c.executemany("INSERT INTO recipes (name, method, weights, provenance, created_at) VALUES (?,?,?,?,?)", rows)
    proc = _run_upgrade(home, "migrate:1")  # 0005: checksum columns added and filled, not committed
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _assert_exactly_at_a_revision(db, reference, "killed in 0005") == "0004"
    proc = _run_upgrade(home)
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(db) as c:
        after = c.execute("SELECT name, method, weights, provenance, created_at, checksum "
                          "FROM recipes ORDER BY id").fetchall()
    assert [r[:5] for r in after] == rows and all(r[5] for r in after)


def _statements_per_revision(tmp_path: Path, url: str | None = None) -> dict[str | None, int]:
    """{revision: SQL statements an upgrade from it to head sends} (None: from an empty database)."""
    from sqlalchemy import Engine, event

    count = []

    def counter(*_a):
        count.append(1)

    url = url or f"sqlite:///{tmp_path / 'count.db'}"
    steps = {}
    event.listen(Engine, "before_cursor_execute", counter)
    try:
        for rev in REVISIONS:
            count.clear()
            upgrade(url, rev)
            steps[rev] = len(count)
    finally:
        event.remove(Engine, "before_cursor_execute", counter)
    return {start: sum(steps[r] for r in REVISIONS[REVISIONS.index(start) + 1 if start else 0:])
            for start in [None, *REVISIONS]}


def test_kills_at_random_statements_then_upgrade_succeeds(tmp_path, reference):
    """Kill point `migrate_sql`: before the n-th SQL statement, n drawn at random among those the
    upgrade has left to send; four kills in a row on one database (each run resumes where the last
    one died), then a clean upgrade. LLDMIX_KILLS=20 runs the issue's longer series (about a second
    a kill); LLDMIX_KILL_SEED repeats a series."""
    seed = int(os.environ.get("LLDMIX_KILL_SEED", time.time_ns() % 10**6))
    rng = random.Random(seed)
    left = _statements_per_revision(tmp_path)
    home = tmp_path / "home"
    rev = None
    for i in range(int(os.environ.get("LLDMIX_KILLS", 4))):
        n = rng.randint(1, max(left[rev], 1))
        proc = _run_upgrade(home, f"migrate_sql:{n}")
        assert proc.returncode in (0, -signal.SIGKILL), f"seed {seed}, kill {i} at statement {n}: {proc.stderr}"
        rev = _assert_exactly_at_a_revision(home / "lldmix.db", reference, f"seed {seed}, kill {i} at statement {n}")
    proc = _run_upgrade(home)
    assert proc.returncode == 0, f"seed {seed}: {proc.stderr}"
    assert _schema(home / "lldmix.db") == (head_revision(), reference[head_revision()])


def test_two_simultaneous_upgrades_both_succeed(tmp_path, reference):
    """Each process pauses a second after its first revision (fault action `pause`), so the two
    surely overlap: the second must wait for the first and then find the schema current."""
    home = tmp_path / "home"
    cmd, env = _upgrade_cmd(home, "migrate:1:pause")
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _ in results), results
    assert _schema(home / "lldmix.db") == (head_revision(), reference[head_revision()])


def test_two_simultaneous_upgrades_on_postgresql_both_succeed(tmp_path):
    from sqlalchemy import inspect

    from lldmix_core.db.engine import current_revision, make_engine
    from test_db import _fresh_pg_url, need_pg

    url = _fresh_pg_url(need_pg())
    env = {**os.environ, "LLDMIX_HOME": str(tmp_path / "home"), "LLDMIX_DB_URL": url, "LLDMIX_FAULT": "migrate:1:pause"}
    procs = [subprocess.Popen([sys.executable, "-m", "lldmix_core.cli", "db", "upgrade"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _ in results), results  # the second waited on the advisory lock
    assert current_revision(make_engine(url)) == head_revision()
    assert "recipes" in inspect(make_engine(url)).get_table_names()


def _pg_schema(url: str) -> tuple[str | None, dict]:
    """(revision, {table: sorted columns}) of a PostgreSQL database, Alembic's own table left out."""
    from sqlalchemy import inspect

    from lldmix_core.db.engine import current_revision, make_engine

    engine = make_engine(url)
    try:
        names = inspect(engine).get_table_names()
        cols = {t: sorted(c["name"] for c in inspect(engine).get_columns(t)) for t in names if t != "alembic_version"}
        return (current_revision(engine) if "alembic_version" in names else None), cols
    finally:
        engine.dispose()


def test_kills_at_random_statements_on_postgresql(tmp_path):
    """The random-kill series on PostgreSQL (transactional DDL there too): after every kill the database
    is exactly at a revision a clean upgrade produces, and the last upgrade reaches head."""
    from test_db import _fresh_pg_url, need_pg

    server = need_pg()
    reference = {None: {}}
    for rev in REVISIONS:
        url = _fresh_pg_url(server)
        upgrade(url, rev)
        reference[rev] = _pg_schema(url)[1]
    left = _statements_per_revision(tmp_path, _fresh_pg_url(server))
    seed = int(os.environ.get("LLDMIX_KILL_SEED", time.time_ns() % 10**6))
    rng = random.Random(seed)
    url = _fresh_pg_url(server)
    env = {**os.environ, "LLDMIX_HOME": str(tmp_path / "home"), "LLDMIX_DB_URL": url}
    rev, killed = None, 0
    for i in range(int(os.environ.get("LLDMIX_KILLS", 4))):
        n = rng.randint(1, max(left[rev], 1))
        proc = subprocess.run([sys.executable, "-m", "lldmix_core.cli", "db", "upgrade"], cwd=ROOT,
                              env={**env, "LLDMIX_FAULT": f"migrate_sql:{n}"}, capture_output=True, text=True, timeout=120)
        assert proc.returncode in (0, -signal.SIGKILL), f"seed {seed}, kill {i} at statement {n}: {proc.stderr}"
        killed += proc.returncode == -signal.SIGKILL
        rev, cols = _pg_schema(url)
        assert cols == reference[rev], f"seed {seed}, kill {i} at statement {n}: not revision {rev}'s schema"
    proc = subprocess.run([sys.executable, "-m", "lldmix_core.cli", "db", "upgrade"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"seed {seed}: {proc.stderr}"
    assert killed >= 1, f"seed {seed}: no upgrade was killed (the fault point never fired)"
    assert _pg_schema(url) == (head_revision(), reference[head_revision()])
