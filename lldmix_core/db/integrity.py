"""Checksums on the result rows users read (KL results, weight estimates, recipes), as loglik vectors
carry one: a flipped bit in a stored KL or weight is refused on read instead of doubling a number
silently.

Each row's `checksum` is the sha256 of a canonical JSON of the fields that carry its meaning (floats
by `repr`, which round-trips a double exactly). Rows written before revision 0005 have NULL and are
filled by the migration. The column defaults (schema.py) compute it on every insert, Core or ORM;
the mapper events below keep a recipe's checksum current on update and verify ORM loads; `verify_all`
checks every row (the CLI calls it before a run writes and before recipes are read).
"""

from __future__ import annotations

import hashlib
import json
from typing import Mapping

from sqlalchemy import event, text

from lldmix_core.errors import UserError

KL_FIELDS = ("run_id", "step", "model_id", "reference_model_id", "corpus_id", "nats_per_text", "bits_per_byte",
             "gap_bits_per_byte", "estimator")
WEIGHT_FIELDS = ("run_id", "step", "domain_id", "weight", "tau", "method")
RECIPE_FIELDS = ("name", "method", "weights")
TABLES = {"kl_results": KL_FIELDS, "weight_estimates": WEIGHT_FIELDS, "recipes": RECIPE_FIELDS}


def _canon(v):
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, dict):
        return {str(k): _canon(x) for k, x in sorted(v.items())}
    if isinstance(v, str) and v.startswith(("{", "[")):  # JSON columns read back as text by raw SQL
        try:
            return _canon(json.loads(v))
        except ValueError:
            return v
    return v


def row_checksum(table: str, row: Mapping) -> str:
    """sha256 hex of the row's meaningful fields (`TABLES[table]`)."""
    fields = TABLES[table]
    payload = json.dumps([table] + [_canon(_num(f, row.get(f))) for f in fields], sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(payload.encode()).hexdigest()


FLOAT_FIELDS = {"nats_per_text", "bits_per_byte", "gap_bits_per_byte", "weight", "tau"}


def _num(field: str, v):
    """REAL columns read back as float whatever was inserted: hash them as floats."""
    if field in FLOAT_FIELDS and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


def column_default(table: str):
    """A Column(default=...) callable computing the checksum from the INSERT's own parameters."""
    def compute(context):
        return row_checksum(table, context.get_current_parameters())
    return compute


def verify_all(engine) -> None:
    """Recompute every checksum in the three tables; refuse (UserError) at the first mismatch."""
    with engine.connect() as conn:
        for table, fields in TABLES.items():
            cols = ", ".join(("id", "checksum") + fields)
            for row in conn.execute(text(f"SELECT {cols} FROM {table}")).mappings():
                _check_row(table, dict(row))


def _check_row(table: str, row: Mapping) -> None:
    if row.get("checksum") is None:
        return
    if row_checksum(table, row) != row["checksum"]:
        raise UserError(f"{table} row {row.get('id')} fails its checksum: the database is corrupt (a stored value "
                        "changed); restore it from a backup, or delete the run and re-run it")


def install(schema) -> None:
    """Mapper events: verify KL results and recipes loaded through the ORM; re-seal updated recipes."""
    def _verify(table):
        def on_load(target, _context):
            _check_row(table, {"id": target.id, "checksum": target.checksum,
                               **{f: getattr(target, f) for f in TABLES[table]}})
        return on_load

    event.listen(schema.KLResult, "load", _verify("kl_results"))
    event.listen(schema.Recipe, "load", _verify("recipes"))

    @event.listens_for(schema.Recipe, "before_update")
    def _reseal(_mapper, _conn, target):
        target.checksum = row_checksum("recipes", {f: getattr(target, f) for f in RECIPE_FIELDS})
