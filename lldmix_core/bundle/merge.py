"""`lldmix db import FILE`: merge a result bundle (or another lldmix SQLite database) into this database.

One transaction: every row is matched by its natural key, new rows get this database's ids and every
reference is remapped; rows already here are kept (never duplicated, never overwritten), so importing
the same bundle twice adds nothing. Natural keys:

    domains name · corpora content_hash (texts come with their corpus) · models name (the fingerprint
    must agree) · runs key (a trained run's key is re-derived for this database's target id, keys.py) ·
    loglik_vectors (model, corpus, tokenizer hash) · domain_logliks (model, corpus, domain) · recipes name ·
    weight_estimates, kl_results, run_metrics come with their run (kept as they are here when the run is)

Only the bundle's finished groups are merged (selection.py), so a worker's database can be imported too.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Connection, Engine, Table, and_, select, update

from lldmix_core.db import integrity
from lldmix_core.db import schema as S
from lldmix_core.bundle.keys import rederived_key
from lldmix_core.bundle.open import open_bundle
from lldmix_core.bundle.selection import TABLES, select_rows, selected_rows
from lldmix_core.db.store.common import same
from lldmix_core.errors import UserError

SEALED = set(integrity.TABLES)  # tables whose `checksum` hashes ids: this database's column default re-seals them


@dataclass
class ImportReport:
    path: Path
    added: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    present: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rekeyed: int = 0  # trained runs whose key was re-derived for this database's target id
    unfinished_here: list[str] = field(default_factory=list)  # runs kept here unfinished, finished in the bundle
    left_out: tuple[str, ...] = ()  # the bundle's unfinished groups, not merged


def import_bundle(target: Engine, path: Path) -> ImportReport:
    """Merge the finished groups of the bundle at `path` into the database of `target`, in one transaction."""
    bundle = open_bundle(path)
    try:
        with bundle.connect() as src:
            sel = select_rows(src)
            rows = {t.name: selected_rows(src, t, sel) for t in TABLES}
    finally:
        bundle.dispose()
    report = ImportReport(Path(path), left_out=tuple(sel.left_out))
    with target.begin() as dst:
        _Merger(dst, rows, report).merge()
    return report


def _aware(row: dict) -> dict:
    """SQLite hands datetimes back naive (stored as UTC): mark them UTC for a timestamptz column."""
    return {k: (v.replace(tzinfo=timezone.utc) if isinstance(v, datetime) and v.tzinfo is None else v)
            for k, v in row.items()}


class _Merger:
    """Merges the bundle's rows (`rows`: table name -> dicts with the bundle's ids) table by table,
    keeping `ids[table][bundle id] = this database's id`."""

    def __init__(self, dst: Connection, rows: dict[str, list[dict]], report: ImportReport):
        self.dst, self.rows, self.report = dst, rows, report
        self.ids: dict[str, dict[int, int]] = defaultdict(dict)
        self.new_runs: set[int] = set()  # bundle ids of the runs added here (their results come with them)
        self.added_models: set[int] = set()  # bundle ids of the models added here

    def merge(self) -> None:
        self._by_unique("domains", S.Domain.__table__, ("name",))
        self._models()
        self._corpora()
        self._runs()
        self._link_models_to_runs()
        self._by_unique("loglik_vectors", S.LoglikVector.__table__, ("model_id", "corpus_id", "tokenizer_hash"))
        self._by_unique("domain_logliks", S.DomainLoglik.__table__, ("model_id", "corpus_id", "domain_id"))
        for name in ("weight_estimates", "kl_results", "run_metrics"):
            self._run_results(name)
        self._by_unique("recipes", S.Recipe.__table__, ("name",), self._recipe_provenance)

    # ------------------------------------------------------------------ helpers
    REFS = {"domain_id": "domains", "corpus_id": "corpora", "model_id": "models", "reference_model_id": "models",
            "base_model_id": "models", "target_model_id": "models", "final_model_id": "models", "run_id": "runs",
            "parent_id": "runs"}

    def _remapped(self, row: dict, table: str) -> dict:
        """`row` of `table` with its references in this database's ids (a reference not carried becomes
        NULL), without its id and, where the checksum hashes ids (SEALED), without its checksum."""
        own = ("id", "checksum") if table in SEALED else ("id",)
        out = {k: v for k, v in row.items() if k not in own}
        for col, referred in self.REFS.items():
            if col in out and out[col] is not None:
                out[col] = self.ids[referred].get(out[col])
        return _aware(out)

    def _insert(self, name: str, table: Table, values: dict) -> int:
        new_id = self.dst.execute(table.insert().values(**values)).inserted_primary_key[0]
        self.report.added[name] += 1
        return new_id

    def _find(self, table: Table, values: dict, key: tuple[str, ...]) -> int | None:
        return self.dst.scalar(select(table.c.id).where(and_(*(same(table.c[c], values[c]) for c in key))).limit(1))

    def _by_unique(self, name: str, table: Table, key: tuple[str, ...], adjust=None) -> None:
        """Rows matched by the natural key `key` (after remapping and `adjust(values)`, when given): found
        ones kept, others inserted."""
        for row in self.rows[name]:
            values = self._remapped(row, name)
            values = adjust(values) if adjust is not None else values
            found = self._find(table, values, key)
            if found is None:
                found = self._insert(name, table, values)
            else:
                self.report.present[name] += 1
            self.ids[name][row["id"]] = found

    # ------------------------------------------------------------------ tables with their own rules
    def _models(self) -> None:
        """Models by name; the same name with another fingerprint is another model: refused."""
        table = S.Model.__table__
        for row in self.rows["models"]:
            have = self.dst.execute(select(table.c.id, table.c.fingerprint).where(table.c.name == row["name"])).first()
            if have is not None and have.fingerprint != row["fingerprint"]:
                raise UserError(f"{self.report.path}: model {row['name']!r} is in this database with another "
                                f"fingerprint ({have.fingerprint[:12]} here, {row['fingerprint'][:12]} in the bundle): "
                                "nothing was imported")
            if have is not None:
                self.report.present["models"] += 1
                self.ids["models"][row["id"]] = have.id
            else:  # its run is linked once the runs are merged
                self.ids["models"][row["id"]] = self._insert("models", table, {**self._remapped(row, "models"), "run_id": None})
                self.added_models.add(row["id"])

    def _corpora(self) -> None:
        """Corpora by content hash, with their texts; a sample corpus's target model id remapped."""
        table = S.Corpus.__table__
        texts: dict[int, list[dict]] = defaultdict(list)
        for t in self.rows["texts"]:
            texts[t["corpus_id"]].append(t)
        for row in self.rows["corpora"]:
            found = self._find(table, row, ("content_hash",))
            if found is not None:
                self.report.present["corpora"] += 1
                self.report.present["texts"] += len(texts[row["id"]])
                self.ids["corpora"][row["id"]] = found
                continue
            settings, source = dict(row["settings"] or {}), row["source"]
            old_model = settings.get("target_model_id")
            if isinstance(old_model, int):  # a sample corpus: drawn from this model (sampled_eval.target_samples)
                settings["target_model_id"] = new_model = self._drawn_from(old_model, settings.get("target_fingerprint"))
                source = source.replace(f"drawn from model {old_model} (", f"drawn from model {new_model} (", 1)
            new_id = self._insert("corpora", table, {**self._remapped(row, "corpora"), "settings": settings, "source": source})
            self.ids["corpora"][row["id"]] = new_id
            batch = [{**self._remapped(t, "texts"), "corpus_id": new_id} for t in texts[row["id"]]]
            if batch:
                self.dst.execute(S.CorpusText.__table__.insert(), batch)
                self.report.added["texts"] += len(batch)

    def _drawn_from(self, old_model: int, fingerprint: str | None) -> int | None:
        """This database's id of the model a sample corpus was drawn from: that model, or (when the bundle
        does not carry it: another spec's model with the same weights drew first) one with its weights."""
        if old_model in self.ids["models"]:
            return self.ids["models"][old_model]
        alike = (m["id"] for m in self.rows["models"] if m["fingerprint"] == fingerprint)
        return next((self.ids["models"][i] for i in alike), None)

    def _runs(self) -> None:
        """Runs by key (parents before children); a trained run's key re-derived for the remapped target."""
        table = S.Run.__table__
        corpus_hash = {c["id"]: c["content_hash"] for c in self.rows["corpora"]}
        for row in self.rows["runs"]:
            key = rederived_key(row, corpus_hash.get(row["corpus_id"]), self.ids["models"].get(row["target_model_id"]))
            self.report.rekeyed += key != row["key"]
            have = self.dst.execute(select(table.c.id, table.c.status, table.c.name).where(table.c.key == key)).first()
            if have is not None:
                self.report.present["runs"] += 1
                self.ids["runs"][row["id"]] = have.id
                if have.status != "finished":
                    self.report.unfinished_here.append(have.name)
                continue
            # MLflow runs do not travel: an id of another machine's tracking server would be resumed there
            values = {**self._remapped(row, "runs"), "key": key, "job_id": None, "mlflow_run_id": None}
            self.ids["runs"][row["id"]] = self._insert("runs", table, values)
            self.new_runs.add(row["id"])

    def _link_models_to_runs(self) -> None:
        """The run each added model belongs to, and a run's evaluated model's source `run:<id>`, in this
        database's run ids (models found here are left as they are)."""
        table = S.Model.__table__
        for row in self.rows["models"]:
            new_run = self.ids["runs"].get(row["run_id"]) if row["run_id"] is not None else None
            if new_run is None or row["id"] not in self.added_models:
                continue
            source = f"run:{new_run}" if row["source"] == f"run:{row['run_id']}" else row["source"]
            self.dst.execute(update(table).where(table.c.id == self.ids["models"][row["id"]])
                             .values(run_id=new_run, source=source))

    def _recipe_provenance(self, values: dict) -> dict:
        """An aggregated recipe's `provenance.pass1_run_id` in this database's run ids."""
        provenance = dict(values["provenance"] or {})
        if isinstance(provenance.get("pass1_run_id"), int):
            provenance["pass1_run_id"] = self.ids["runs"].get(provenance["pass1_run_id"])
        return {**values, "provenance": provenance}

    def _run_results(self, name: str) -> None:
        """A run's weights, KL results and metrics: with the run when it was added, else kept as they are here."""
        table = next(t for t in TABLES if t.name == name)
        batch = []
        for row in self.rows[name]:
            if row["run_id"] in self.new_runs:
                batch.append(self._remapped(row, name))
            else:
                self.report.present[name] += 1
        for values in batch:  # one by one: each row's checksum default sees its own parameters
            self._insert(name, table, values)
