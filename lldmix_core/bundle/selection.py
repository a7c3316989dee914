"""Which rows a result bundle carries: finished groups of runs (a spec's parent run and its child runs,
all finished) and every row those runs need, read from any lldmix database (SQLite or PostgreSQL).

A group whose runs are not all finished is left out entirely (the engine re-runs it where the bundle
goes). Jobs, stage claims and the queue are never selected: they are one machine's coordination state.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from sqlalchemy import Connection, Table, select

from lldmix_core.db import schema as S
from lldmix_core.methods import is_parent_row

# the tables a bundle carries, in an order where every row's references come first (models.run_id and
# the runs' model columns refer to each other: the bundle writer and the merger handle that pair)
TABLES: tuple[Table, ...] = tuple(t.__table__ for t in (
    S.Domain, S.Corpus, S.CorpusText, S.Model, S.Run, S.LoglikVector, S.DomainLoglik, S.WeightEstimate,
    S.KLResult, S.RunMetric, S.Recipe))
NEVER_CARRIED = ("jobs", "stages", "alembic_version")
CHUNK = 500  # ids per IN (...) list: under every driver's bound-parameter limit


@dataclass
class Selection:
    """Ids of the selected rows per table name (ints); `left_out`: names of the groups left out."""

    ids: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    groups: int = 0
    left_out: list[str] = field(default_factory=list)


def rows_where_in(conn: Connection, table: Table, column: str, values: Iterable[int],
                  columns: tuple[str, ...] | None = None) -> list[dict]:
    """Rows of `table` (all columns, or `columns` and id) whose `column` is one of `values`, as dicts, by id."""
    values = sorted(set(v for v in values if v is not None))
    what = [table] if columns is None else [table.c.id, *(table.c[c] for c in columns)]
    out: list[dict] = []
    for i in range(0, len(values), CHUNK):
        q = select(*what).where(table.c[column].in_(values[i:i + CHUNK]))
        out.extend(dict(r) for r in conn.execute(q).mappings())
    out.sort(key=lambda r: r["id"])
    return out


def finished_groups(conn: Connection, spec_hashes: set[str] | None) -> tuple[list[int], int, list[str]]:
    """(run ids of the finished groups, number of groups, names of groups left out as unfinished).

    A group is a parent run with its children, or a run with neither parent nor children. With
    `spec_hashes`, only the parent rows of those specs count (the way `lldmix results` finds a spec)."""
    R = S.Run.__table__
    runs = conn.execute(select(R.c.id, R.c.parent_id, R.c.method, R.c.status, R.c.spec_hash, R.c.name)
                        .order_by(R.c.id)).all()
    children: dict[int, list] = defaultdict(list)
    for r in runs:
        if r.parent_id is not None:
            children[r.parent_id].append(r)
    chosen, left_out, groups = [], [], 0
    for top in (r for r in runs if r.parent_id is None):
        if spec_hashes is not None and not (is_parent_row(top.method) and top.spec_hash in spec_hashes):
            continue
        group = [top, *children[top.id]]
        if all(r.status == "finished" for r in group):
            chosen.extend(r.id for r in group)
            groups += 1
        else:
            left_out.append(top.name)
    return chosen, groups, left_out


def select_rows(conn: Connection, spec_hashes: set[str] | None = None) -> Selection:
    """The finished groups (of `spec_hashes`' specs, or all) and the closure of rows they refer to."""
    sel = Selection()
    run_ids, sel.groups, sel.left_out = finished_groups(conn, spec_hashes)
    ids = sel.ids
    ids["runs"] = set(run_ids)
    runs = rows_where_in(conn, S.Run.__table__, "id", run_ids)
    kls = rows_where_in(conn, S.KLResult.__table__, "run_id", run_ids)
    ids["kl_results"] = {k["id"] for k in kls}
    ids["models"] = ({r[c] for r in runs for c in ("base_model_id", "target_model_id", "final_model_id")}
                     | {k[c] for k in kls for c in ("model_id", "reference_model_id")}
                     | {m["id"] for m in rows_where_in(conn, S.Model.__table__, "run_id", run_ids)}) - {None}
    ids["corpora"] = ({r["corpus_id"] for r in runs} | {k["corpus_id"] for k in kls}) - {None}
    for name, table in (("loglik_vectors", S.LoglikVector.__table__), ("domain_logliks", S.DomainLoglik.__table__)):
        ids[name] = {v["id"] for v in _by_model(conn, table, ids["models"]) if v["corpus_id"] in ids["corpora"]}
    texts = rows_where_in(conn, S.CorpusText.__table__, "corpus_id", ids["corpora"], columns=("domain_id",))
    ids["texts"] = {t["id"] for t in texts}
    weights = rows_where_in(conn, S.WeightEstimate.__table__, "run_id", run_ids)
    ids["weight_estimates"] = {w["id"] for w in weights}
    ids["run_metrics"] = {m["id"] for m in _by_run(conn, S.RunMetric.__table__, run_ids)}
    ids["recipes"] = {r["id"] for r in _by_run(conn, S.Recipe.__table__, run_ids)}
    dom_rows = rows_where_in(conn, S.DomainLoglik.__table__, "id", ids["domain_logliks"], columns=("domain_id",))
    ids["domains"] = {t["domain_id"] for t in texts} | {w["domain_id"] for w in weights} | {d["domain_id"] for d in dom_rows}
    return sel


def _by_model(conn: Connection, table: Table, model_ids: set[int]) -> list[dict]:
    return rows_where_in(conn, table, "model_id", model_ids, columns=("corpus_id",))


def _by_run(conn: Connection, table: Table, run_ids: list[int]) -> list[dict]:
    return rows_where_in(conn, table, "run_id", run_ids, columns=("run_id",))


def selected_rows(conn: Connection, table: Table, sel: Selection) -> list[dict]:
    """The selected rows of `table`, ordered by id (runs: parents before their children)."""
    rows = rows_where_in(conn, table, "id", sel.ids.get(table.name, ()))
    if table.name == "runs":
        rows.sort(key=lambda r: (r["parent_id"] is not None, r["id"]))
    return rows
