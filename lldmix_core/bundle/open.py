"""Open a result bundle read-only, after checking it is one: a SQLite file with the lldmix tables, at
this code's schema revision, whose result rows pass their checksums. Anything else is one UserError line
naming the file (nothing is written anywhere)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from lldmix_core.errors import UserError

SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


def open_bundle(path: Path) -> Engine:
    """A read-only engine on the bundle at `path` (the caller disposes it); UserError when it is not one."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    try:
        with open(path, "rb") as f:
            magic = f.read(len(SQLITE_MAGIC))
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None
    if magic != SQLITE_MAGIC:
        raise UserError(f"{path} is not an lldmix bundle (not a SQLite database)")
    uri = f"{path.absolute().as_uri()}?mode=ro"
    engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, timeout=30), poolclass=NullPool)
    try:
        _check(engine, path)
    except DBAPIError as e:
        engine.dispose()
        raise UserError(f"{path}: cannot be read as a database ({str(e.orig).splitlines()[0]})") from None
    except BaseException:
        engine.dispose()
        raise
    return engine


def _check(engine: Engine, path: Path) -> None:
    from lldmix_core.bundle.selection import TABLES
    from lldmix_core.db.engine import current_revision, head_revision
    from lldmix_core.db.integrity import verify_all

    tables = set(inspect(engine).get_table_names())
    missing = [t.name for t in TABLES if t.name not in tables] + (["alembic_version"] if "alembic_version" not in tables else [])
    if missing:
        raise UserError(f"{path} is not an lldmix bundle (no table {missing[0]})")
    have, want = current_revision(engine), head_revision()
    if have != want:
        raise UserError(f"{path} is at schema revision {have}, this lldmix expects {want}: export it again with this "
                        f"lldmix, or migrate a copy first (LLDMIX_DB_URL=sqlite:///COPY lldmix db upgrade)")
    try:
        verify_all(engine)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
