"""Connections and migrations. SQLite (the embedded default) gets WAL, a busy timeout and foreign
keys; PostgreSQL works through the same code with a `postgresql://` URL (psycopg 3)."""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from lldmix_core.errors import SchemaBehindError, UserError
from lldmix_core.faults import fault_point

REPO_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO_ROOT / "migrations"


def normalise_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://"):]
    return url


def redact(url: str) -> str:
    return make_url(normalise_url(url)).render_as_string(hide_password=True)


@lru_cache(maxsize=16)
def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            _sqlite_folder(sqlite_path(url), url)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if u.get_backend_name() == "postgresql":
        try:
            return create_engine(url, pool_pre_ping=True)
        except ModuleNotFoundError as e:  # the driver is an extra: the plain install has SQLite only
            if not (e.name or "").startswith("psycopg"):
                raise
            raise UserError(f"database URL {redact(url)} needs the PostgreSQL driver psycopg, which is not installed: "
                            "pip install -c constraints.txt -e '.[postgres]' (or pip install 'psycopg[binary]>=3.2')"
                            ) from None
    raise UserError(f"database URL {redact(url)}: use sqlite:///… or postgresql://…")


def _sqlite_pragmas(dbapi_conn, _record, foreign_keys: bool = True) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    # WAL + NORMAL: a committed transaction survives a process crash (SIGKILL); only a power
    # loss can undo the newest commits, and the file is never corrupted (sqlite.org/wal.html)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_migration_engine(url: str) -> Engine:
    """The engine Alembic migrates with. On SQLite each transaction really holds its DDL: Python's
    sqlite3 driver, left to itself, commits before every CREATE/ALTER/DROP, so a killed migration
    left half a revision behind (columns added, version not stamped) and every later upgrade failed.
    Here the driver never begins or commits on its own (isolation_level None) and SQLAlchemy's
    begin emits `BEGIN IMMEDIATE` (the write lock up front). Foreign keys are off on these
    connections: batch migrations recreate tables, and the PRAGMA is a no-op inside a transaction."""
    url = normalise_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        _sqlite_folder(sqlite_path(url), url)
        engine = create_engine(url, connect_args={"timeout": 30}, poolclass=NullPool)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, record):
            _sqlite_pragmas(dbapi_conn, record, foreign_keys=False)
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif u.get_backend_name() == "sqlite":
        return make_engine(url)  # an in-memory database is the caller's one connection: no kill point there
    else:
        # PostgreSQL has transactional DDL. Its own engine (make_engine's uncached body; the migration
        # disposes it), so the kill point below never lands on the process's shared, cached engine
        engine = make_engine.__wrapped__(url)

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(*_args):
        fault_point("migrate_sql")  # the crash tests kill before the n-th statement of a migration (both databases)

    return engine


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL (`sqlite:///file:PATH?mode=ro&uri=true` included)."""
    u = make_url(normalise_url(url))
    db = u.database or ""
    if u.query.get("uri") in ("true", "1") and db.startswith("file:"):
        db = db[len("file:"):]
    return Path(db)


def check_writable(url: str) -> None:
    """Refuse a database this process cannot write before a run starts work (SQLite: take and drop
    the write lock; nothing is changed)."""
    u = make_url(normalise_url(url))
    if u.get_backend_name() != "sqlite":
        return
    raw = make_engine(url).raw_connection()
    try:
        cur = raw.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.execute("DELETE FROM alembic_version WHERE 0")  # a write that touches no row
            finally:
                cur.execute("ROLLBACK")
        except Exception as e:  # noqa: BLE001 - classified below
            low = str(e).lower()
            if "readonly" in low or "read-only" in low:
                raise UserError(f"database {redact(url)} is read-only: make the file and its folder writable "
                                "(nothing was written)") from None
            if "locked" in low:
                raise UserError(f"database {redact(url)} is locked by another process (retry when it finishes)") from None
            raise
        finally:
            cur.close()
    finally:
        raw.close()


def _sqlite_folder(db: Path, url: str) -> None:
    """Create the folder of the default database (inside LLDMIX_HOME) only; refuse any other missing
    folder instead of creating it (a typo in LLDMIX_DB_URL must not create /nonexistent/dir)."""
    import os

    folder = db.expanduser().absolute().parent
    if folder.is_dir():
        return
    home = Path(os.environ.get("LLDMIX_HOME") or ".lldmix").expanduser().resolve()
    if folder.resolve() == home:
        folder.mkdir(parents=True, exist_ok=True)
        return
    what = "is not a folder" if folder.exists() else "does not exist"
    raise UserError(f"database URL {redact(url)}: folder {folder} {what} (create it first)")


def check_health(url: str) -> None:
    """Refuse a corrupt SQLite file before anything writes to it (`PRAGMA quick_check`, opened
    read-only so the check itself changes nothing); PostgreSQL: a connection and `SELECT 1`."""
    import sqlite3

    u = make_url(normalise_url(url))
    if u.get_backend_name() != "sqlite":
        from sqlalchemy import text

        with make_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
        return
    if not u.database or u.database == ":memory:" or not sqlite_path(url).is_file():
        return
    path = sqlite_path(url)
    bad = None
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
        if [r[0] for r in rows] != ["ok"]:
            bad = f"{rows[0][0]}" + (f" and {len(rows) - 1} more problems" if len(rows) > 1 else "")
    except sqlite3.DatabaseError as e:
        if "locked" in str(e).lower():
            raise UserError(f"database {redact(url)} is locked by another process (retry when it finishes)") from None
        bad = str(e)
    if bad is not None:
        raise UserError(f"database {redact(url)} is corrupt (quick_check: {bad}): nothing was written; restore it "
                        "from a backup or move it away and run `lldmix db upgrade`")


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate to `revision`: each revision's changes and its version stamp in one transaction, one
    migrating process at a time (a second waits, then finds the schema current)."""
    from alembic import command

    with _migration_lock(url):
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    with _migration_lock(url):
        command.downgrade(alembic_config(url), revision)


@contextmanager
def _migration_lock(url: str):
    """A file lock beside a SQLite database for the whole migration: two `db upgrade`s computed the
    same plan and the second failed on what the first had just done."""
    u = make_url(normalise_url(url))
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        yield
        return
    from lldmix_core.atomic import file_lock

    db = sqlite_path(url)
    _sqlite_folder(db, url)
    with file_lock(db.with_name(f".{db.name}.migrate.lock")):
        yield


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def require_database_file(url: str) -> None:
    """Refuse a SQLite database whose file does not exist yet, before anything opens it: opening
    would create the file (and LLDMIX_HOME) only to say the schema is missing."""
    u = make_url(normalise_url(url))
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return
    if not sqlite_path(url).exists():
        raise SchemaBehindError(f"database {redact(url)} is empty (no schema), code expects {head_revision()}: "
                                "run `lldmix db upgrade`")


def require_current(engine: Engine) -> None:
    """Refuse to run on a schema that is not the code's: say which command fixes it."""
    from alembic.script import ScriptDirectory

    url = redact(engine.url.render_as_string(hide_password=False))
    have = current_revision(engine)
    want = head_revision()
    if have == want:
        return
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    known = {rev.revision for rev in script.walk_revisions()}
    if have is not None and have not in known:
        raise SchemaBehindError(f"database {url} is at revision {have}, newer than this code knows ({want}): upgrade lldmix")
    where = "empty (no schema)" if have is None else f"at revision {have}"
    raise SchemaBehindError(f"database {url} is {where}, code expects {want}: run `lldmix db upgrade`")


def has_tables(engine: Engine) -> bool:
    return bool(inspect(engine).get_table_names())
