"""Alembic environment: our schema's metadata, batch mode on SQLite, URL from config or LLDMIX_DB_URL."""

from alembic import context

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
    from lldmix_core.db.engine import make_migration_engine

    # the migration engine makes SQLite's DDL transactional (and turns foreign keys off for batch
    # migrations, which recreate tables); one transaction per revision holds its changes and its
    # version stamp, so a killed upgrade leaves the database at the previous revision, intact
    engine = make_migration_engine(_url())
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=sqlite,
                          compare_type=True, transaction_per_migration=True, on_version_apply=_applied)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
