"""`lldmix db export OUT [--spec FILE]`: finished results as one SQLite file at the code's schema revision.

The file is made by the project's own migrations (so it is the documented schema, docs/SCHEMA.md, and
`lldmix` can open it as a database), then filled with the selected rows under their source ids. It is
written under a temp name beside OUT and renamed, in rollback-journal mode (one self-contained file,
no -wal/-shm beside it), so it can be committed to git or copied as it is.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import NullPool

from lldmix_core.bundle.selection import TABLES, Selection, select_rows, selected_rows
from lldmix_core.errors import UserError


@dataclass(frozen=True)
class ExportReport:
    path: Path
    counts: dict[str, int]  # rows written per table
    groups: int  # finished groups (parent run + children) written
    left_out: tuple[str, ...]  # names of the groups left out because not all their runs finished
    size_bytes: int


def spec_hashes_of(spec_path: Path) -> set[str]:
    """The spec hashes a run spec or a benchmark file names (every expanded cell of a benchmark)."""
    from lldmix_core.swarm import swarm_specs

    return {s.spec.spec_hash for s in swarm_specs(spec_path)}


def export_bundle(source: Engine, out: Path, *, spec_path: Path | None = None, force: bool = False) -> ExportReport:
    """Write the finished groups of `source` (of `spec_path`'s specs, or all) to the SQLite file `out`."""
    out = Path(out)
    if out.exists() and not force:
        raise UserError(f"{out} exists: pass --force to replace it")
    if out.exists() and not out.is_file():
        raise UserError(f"{out} exists and is not a file")
    if not out.parent.is_dir():
        raise UserError(f"{out}: folder {out.parent} does not exist")
    hashes = spec_hashes_of(spec_path) if spec_path is not None else None
    with source.connect() as conn:
        sel = select_rows(conn, hashes)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        _remove(tmp)
        try:
            counts = _write_file(conn, sel, tmp)
            if force:
                for stale in (Path(f"{out}-wal"), Path(f"{out}-shm"), Path(f"{out}-journal")):
                    stale.unlink(missing_ok=True)  # a journal of the replaced file must not meet the new one
            os.replace(tmp, out)
        finally:
            _remove(tmp)
    return ExportReport(out, counts, sel.groups, tuple(sel.left_out), out.stat().st_size)


def _remove(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        p.unlink(missing_ok=True)


def _write_file(conn, sel: Selection, path: Path) -> dict[str, int]:
    """Create `path` at the head revision and copy the selected rows into it; rows written per table."""
    from alembic import command

    from lldmix_core.db.engine import alembic_config

    url = f"sqlite:///{path}"
    command.upgrade(alembic_config(url), "head")  # our own temp file: no migration lock needed
    bundle = create_engine(url, poolclass=NullPool)
    # models and runs refer to each other: foreign keys are checked once every row is in
    event.listen(bundle, "connect", lambda dbapi_conn, _rec: dbapi_conn.execute("PRAGMA foreign_keys=OFF"))
    counts: dict[str, int] = {}
    try:
        with bundle.begin() as dst:
            for table in TABLES:
                rows = [_detach(table.name, r, sel) for r in selected_rows(conn, table, sel)]
                if rows:
                    dst.execute(table.insert(), rows)
                counts[table.name] = len(rows)
            bad = dst.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if bad:
                raise RuntimeError(f"bundle {path}: {len(bad)} rows refer to rows not selected, e.g. {bad[0]}")
    finally:
        bundle.dispose()
    raw = sqlite3.connect(path, isolation_level=None)
    try:  # one self-contained file: rollback journal, not WAL; compacted
        raw.execute("PRAGMA journal_mode=DELETE")
        raw.execute("VACUUM")
    finally:
        raw.close()
    with open(path, "rb") as f:
        os.fsync(f.fileno())
    return counts


def _detach(table: str, row: dict, sel: Selection) -> dict:
    """A row as the bundle holds it: references to rows the bundle does not carry (a job, a run outside
    the selection) set to NULL."""
    if table == "runs":
        row["job_id"] = None
    elif table == "models" and row["run_id"] not in sel.ids["runs"]:
        row["run_id"] = None
    elif table == "recipes" and row["run_id"] not in sel.ids["runs"]:
        row["run_id"] = None
    return row
