"""Alembic environment: our schema's metadata, batch mode on SQLite, URL from config or LLDMIX_DB_URL."""

from contextlib import contextmanager

from alembic import context
from sqlalchemy import text

from lldmix_core.db.schema import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from lldmix_core.config import get_settings
        from lldmix_core.db.engine import normalise_url

        url = normalise_url(get_settings().db_url)
    return url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def _applied(**_kw) -> None:
    """Called once a revision's changes and version stamp are sent, before its COMMIT: the crash
    tests' kill point `migrate` (a no-op unless LLDMIX_FAULT names it)."""
    from lldmix_core.faults import fault_point

    fault_point("migrate")


def run_migrations_online() -> None:
    from lldmix_core.db.engine import make_engine, make_migration_engine

    # the migration engine makes SQLite's DDL transactional (and turns foreign keys off for batch
    # migrations, which recreate tables); one transaction per revision holds its changes and its
    # version stamp, so a killed upgrade leaves the database at the previous revision, intact
    url = _url()
    engine = make_migration_engine(url)
    try:
        with engine.connect() as connection, _serialised(connection):
            sqlite = connection.dialect.name == "sqlite"
            context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=sqlite,
                              compare_type=True, transaction_per_migration=True, on_version_apply=_applied)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        if engine is not make_engine(url):  # the migration's own engine; an in-memory database's is shared
            engine.dispose()


# any fixed 64-bit number: the key of PostgreSQL's advisory lock that serialises lldmix migrations
PG_MIGRATION_LOCK = 2024_0024


@contextmanager
def _serialised(connection):
    """On PostgreSQL, one migrating process per database (a session-level advisory lock: a second
    `db upgrade` waits, then finds the schema current). SQLite is serialised by a file lock in
    `lldmix_core.db.engine.upgrade`."""
    if connection.dialect.name != "postgresql":
        yield
        return
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PG_MIGRATION_LOCK})
    connection.commit()  # the lock outlives this transaction; each revision then gets its own
    try:
        yield
    finally:
        connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_MIGRATION_LOCK})
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
