"""Result bundles (`lldmix db export` / `lldmix db import`): a finished benchmark carried to another home
is the same rows by natural key, the same results document, and nothing to train; merges never
duplicate; bad files are refused with one line and the target database untouched."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from conftest import ROOT, run_cli
from lldmix_core.db import schema as S
from lldmix_core.db.engine import normalise_url

SPEC = "runs/ladder-smoke.yaml"
REF_LABEL = {"domain_id": ("domains", "name"), "corpus_id": ("corpora", "content_hash"),
             "model_id": ("models", "name"), "reference_model_id": ("models", "name"),
             "base_model_id": ("models", "name"), "target_model_id": ("models", "name"),
             "final_model_id": ("models", "name"), "run_id": ("runs", "name"), "parent_id": ("runs", "name")}
RESULT_TABLES = ("domains", "corpora", "texts", "models", "runs", "loglik_vectors", "domain_logliks",
                 "weight_estimates", "kl_results", "run_metrics", "recipes")


def _env(home: Path) -> dict:
    return {"LLDMIX_HOME": str(home), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}


def _new_home(tmp_path: Path, name: str) -> Path:
    home = tmp_path / name
    run_cli("db", "upgrade", env=_env(home))
    return home


# differ between two homes that computed the same rows: times, file paths, and a shared evaluation
# corpus's name (the first spec to build it names it)
WHEN_AND_WHERE = ("created_at", "finished_at", "source", "corpora.name")


def natural_rows(url: str, leave_out: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Every result table's rows with ids replaced by what they name (a domain's name, a corpus's content
    hash, a model's or run's name); ids, run keys, the id-sealing checksums and the `leave_out` columns
    left out; sorted."""
    engine = create_engine(normalise_url(url))  # not make_engine: its WAL pragma would write to a bundle
    tables = {t.name: t for t in S.Base.metadata.sorted_tables}
    try:
        with engine.connect() as conn:
            label = {name: dict(conn.execute(select(tables[name].c.id, tables[name].c[col])).all())
                     for name, col in {"domains": "name", "corpora": "content_hash", "models": "name", "runs": "name"}.items()}
            fingerprint = dict(conn.execute(select(tables["models"].c.id, tables["models"].c.fingerprint)).all())
            out = {}
            for name in RESULT_TABLES:
                rows = []
                for r in conn.execute(select(tables[name])).mappings():
                    row = {k: (label[REF_LABEL[k][0]].get(v) if k in REF_LABEL and v is not None else _utc(v))
                           for k, v in r.items()
                           if k not in ("id", "key", "checksum", "job_id", "mlflow_run_id", *leave_out) and f"{name}.{k}" not in leave_out}
                    if name == "models" and str(row.get("source")).startswith("run:"):
                        row["source"] = "run:" + label["runs"][int(row["source"][4:])]
                    drawn_from = (row["settings"] or {}).get("target_model_id") if name == "corpora" else None
                    if isinstance(drawn_from, int):  # a sample corpus names the model its texts were drawn from:
                        weights = fingerprint[drawn_from]  # the first of the models with those weights to draw
                        row["settings"] = {**row["settings"], "target_model_id": weights}
                        if "source" in row:
                            row["source"] = row["source"].replace(f"model {drawn_from} (", f"model {weights} (")
                    rows.append(repr(sorted(row.items())))
                out[name] = sorted(rows)
        return out
    finally:
        engine.dispose()


def _utc(v):
    """A datetime as naive UTC (SQLite hands them back naive, PostgreSQL with a zone); anything else as is."""
    if isinstance(v, datetime) and v.tzinfo is not None:
        return v.astimezone(timezone.utc).replace(tzinfo=None)
    return v


def _db_url(home: Path) -> str:
    return f"sqlite:///{home / 'lldmix.db'}"


def _results_doc(home: Path, out: Path) -> str:
    out.unlink(missing_ok=True)
    run_cli("results", SPEC, "--out", str(out), "--only-finished", env=_env(home))
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def bundle(ladder_smoke_home, tmp_path_factory) -> Path:
    """The finished smoke ladder exported from its home."""
    out = tmp_path_factory.mktemp("bundle") / "ladder-smoke.sqlite"
    proc = run_cli("db", "export", str(out), "--spec", SPEC, env=_env(ladder_smoke_home))
    assert "exported 3 finished group(s)" in proc.stdout and "runs 21" in proc.stdout
    return out


def test_the_bundle_is_a_head_revision_database_without_coordination_state(bundle, ladder_smoke_home):
    from lldmix_core.db.engine import head_revision

    with sqlite3.connect(bundle) as c:
        assert c.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head_revision()
        assert c.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM stages").fetchone()[0] == 0
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file, no -wal beside it
    with sqlite3.connect(ladder_smoke_home / "lldmix.db") as c:
        assert c.execute("SELECT count(*) FROM stages").fetchone()[0] > 0  # the source had some to leave out
    assert natural_rows(f"sqlite:///{bundle}") == natural_rows(_db_url(ladder_smoke_home))


def test_a_fresh_home_gets_the_same_rows_the_same_document_and_nothing_to_train(bundle, ladder_smoke_home, tmp_path):
    home = _new_home(tmp_path, "b")
    proc = run_cli("db", "import", str(bundle), env=_env(home))
    assert "runs 21 added / 0 present" in proc.stdout
    assert natural_rows(_db_url(home)) == natural_rows(_db_url(ladder_smoke_home))
    doc = tmp_path / "RESULTS.md"
    assert _results_doc(home, doc) == _results_doc(ladder_smoke_home, doc)
    rerun = run_cli("run", SPEC, env=_env(home))
    assert ": training " not in rerun.stdout and rerun.stdout.count("found finished in the database") == 3
    assert not (home / "checkpoints").exists() and not (home / "models").exists()
    assert natural_rows(_db_url(home)) == natural_rows(_db_url(ladder_smoke_home))


def test_importing_the_same_bundle_twice_adds_nothing(bundle, tmp_path):
    from lldmix_core.bundle import import_bundle
    from lldmix_core.db.engine import make_engine

    home = _new_home(tmp_path, "b")
    first = import_bundle(make_engine(_db_url(home)), bundle)
    once = natural_rows(_db_url(home))
    second = import_bundle(make_engine(_db_url(home)), bundle)
    assert sum(first.added.values()) > 0 and sum(second.added.values()) == 0
    assert second.present["runs"] == 21 and natural_rows(_db_url(home)) == once


def test_a_home_with_part_of_the_work_merges_without_duplicates_and_finds_every_run(bundle, ladder_smoke_home, tmp_path):
    home = _new_home(tmp_path, "c")
    run_cli("run", SPEC, "--cells", "XS-16-ind", env=_env(home))  # the last cell first: other ids than the source's
    proc = run_cli("db", "import", str(bundle), env=_env(home))
    assert "runs 14 added / 7 present" in proc.stdout and "run key(s) re-derived" in proc.stdout
    # the cell computed here has its own times and file paths; every other column is the source's
    assert natural_rows(_db_url(home), WHEN_AND_WHERE) == natural_rows(_db_url(ladder_smoke_home), WHEN_AND_WHERE)
    rerun = run_cli("run", SPEC, env=_env(home))
    assert ": training " not in rerun.stdout and rerun.stdout.count("found finished in the database") == 3
    doc = tmp_path / "RESULTS.md"
    assert _results_doc(home, doc) == _results_doc(ladder_smoke_home, doc)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _bad_bundles(bundle: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    old = folder / "old.sqlite"
    shutil.copy(bundle, old)
    with sqlite3.connect(old) as c:
        c.execute("UPDATE alembic_version SET version_num = '0004'")
    text = folder / "notes.sqlite"
    text.write_text("not a database\n")
    other = folder / "other.sqlite"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE things (x INTEGER)")
    return {"revision": (old, "is at schema revision 0004"), "text": (text, "is not an lldmix bundle"),
            "other": (other, "is not an lldmix bundle"), "missing": (folder / "absent.sqlite", "no such file")}


def test_a_file_that_is_not_a_bundle_at_this_revision_is_refused_and_nothing_is_written(bundle, tmp_path):
    home = _new_home(tmp_path, "b")
    before = _file_digest(home / "lldmix.db")
    for what, (path, message) in _bad_bundles(bundle, tmp_path).items():
        proc = run_cli("db", "import", str(path), env=_env(home), check=False)
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        assert proc.returncode == 2, (what, proc.stdout, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0] and message in lines[0], what
    assert _file_digest(home / "lldmix.db") == before


def test_a_model_name_taken_here_by_other_weights_refuses_the_whole_import(bundle, tmp_path):
    home = _new_home(tmp_path, "b")
    with sqlite3.connect(bundle) as c:
        name, = c.execute("SELECT name FROM models WHERE source LIKE 'run:%' ORDER BY id LIMIT 1").fetchone()
    with sqlite3.connect(home / "lldmix.db") as c:
        c.execute("INSERT INTO models (name, kind, source, tokenizer, tokenizer_hash, n_params, fingerprint, config, "
                  "created_at) VALUES (?, 'nanogpt', 'elsewhere', 'bytes', 'h', 1, ?, '{}', '2026-01-01')", (name, "f" * 64))
    before = natural_rows(_db_url(home))
    proc = run_cli("db", "import", str(bundle), env=_env(home), check=False)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and f"model '{name}'" in lines[0] and "nothing was imported" in lines[0]
    assert natural_rows(_db_url(home)) == before  # one transaction: the rows merged before the conflict are gone too


def test_export_refuses_to_overwrite_without_force(bundle, ladder_smoke_home, tmp_path):
    out = tmp_path / "out.sqlite"
    out.write_bytes(b"keep me")
    proc = run_cli("db", "export", str(out), env=_env(ladder_smoke_home), check=False)
    assert proc.returncode == 2 and "--force" in proc.stderr + proc.stdout and out.read_bytes() == b"keep me"
    run_cli("db", "export", str(out), "--force", env=_env(ladder_smoke_home))
    assert natural_rows(f"sqlite:///{out}") == natural_rows(f"sqlite:///{bundle}")
    assert [p.name for p in tmp_path.iterdir()] == ["out.sqlite"]  # no temp file left beside it


def test_a_cell_with_an_unfinished_run_is_left_out_whole(ladder_smoke_home, tmp_path):
    home = tmp_path / "d"
    home.mkdir()
    with sqlite3.connect(ladder_smoke_home / "lldmix.db") as src, sqlite3.connect(home / "lldmix.db") as dst:
        src.backup(dst)
    with sqlite3.connect(home / "lldmix.db") as c:
        parent, name = c.execute("SELECT id, name FROM runs WHERE method = 'spec' AND name LIKE '%XS-16-twin%'").fetchone()
        c.execute("UPDATE runs SET status = 'stopped' WHERE parent_id = ? AND method = 'oracle' AND seed = 1", (parent,))
    out = tmp_path / "partial.sqlite"
    proc = run_cli("db", "export", str(out), "--spec", SPEC, env=_env(home))
    assert "exported 2 finished group(s)" in proc.stdout and f"left out 1 unfinished group(s): {name}" in proc.stdout
    with sqlite3.connect(out) as c:
        names = [r[0] for r in c.execute("SELECT name FROM runs")]
    assert len(names) == 14 and not any("XS-16-twin" in n for n in names)


def test_ids_inside_rows_name_the_same_things_after_import_into_a_database_with_other_ids(smoke_home, bundle, tmp_path):
    """A recipe's pass-1 run id (provenance), an evaluated model's `run:<id>` source and a sample corpus's
    model id are ids too: after import they name the same run and model as in the source."""
    smoke = tmp_path / "smoke.sqlite"
    run_cli("db", "export", str(smoke), "--spec", "runs/smoke.yaml", env=_env(smoke_home))
    home = _new_home(tmp_path, "b")
    run_cli("db", "import", str(bundle), env=_env(home))  # other rows first: the smoke rows get other ids
    run_cli("db", "import", str(smoke), env=_env(home))

    def named(db: Path) -> tuple:
        with sqlite3.connect(db) as c:
            runs = dict(c.execute("SELECT id, name FROM runs"))
            recipe = {n: json.loads(p)["pass1_run_id"] for n, p in c.execute("SELECT name, provenance FROM recipes")}
            sources = sorted((m, runs[int(s[4:])]) for m, s in c.execute(
                "SELECT name, source FROM models WHERE source LIKE 'run:%' AND name LIKE 'smoke.%'"))
        return {n: runs[i] for n, i in recipe.items()}, sources

    here, there = named(home / "lldmix.db"), named(smoke_home / "lldmix.db")
    assert here == there and len(here[0]) == 1 and len(here[1]) > 0
    with sqlite3.connect(home / "lldmix.db") as c:
        assert c.execute("SELECT min(id) FROM runs WHERE name LIKE 'smoke.%'").fetchone()[0] > 21  # the ids did move


def test_a_run_key_is_rederived_for_the_importing_databases_target_id_only_when_reproduced():
    from lldmix_core.bundle.keys import rederived_key
    from lldmix_core.run_keys import run_key

    run = {"method": "uniform", "spec_hash": "s" * 64, "seed": 1, "tau_setting": None, "target_model_id": 7,
           "key": run_key("s" * 64, "c" * 64, 1, "uniform", None, 7)}
    assert rederived_key(run, "c" * 64, 9) == run_key("s" * 64, "c" * 64, 1, "uniform", None, 9) != run["key"]
    assert rederived_key(run, "d" * 64, 9) == run["key"]  # another corpus does not reproduce it: kept
    assert rederived_key({**run, "method": "spec"}, "c" * 64, 9) == run["key"]  # a parent's key has no ids


def test_import_into_postgresql(bundle):
    from test_db import _fresh_pg_url, need_pg

    from lldmix_core.bundle import import_bundle
    from lldmix_core.db.engine import make_engine, upgrade

    url = _fresh_pg_url(need_pg())
    upgrade(url)
    first = import_bundle(make_engine(url), bundle)
    second = import_bundle(make_engine(url), bundle)
    assert first.added["runs"] == 21 and sum(second.added.values()) == 0
    assert natural_rows(url) == natural_rows(f"sqlite:///{bundle}")


def test_the_bundle_documentation_names_the_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "lldmix db export" in readme and "lldmix db import" in readme
