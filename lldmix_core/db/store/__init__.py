"""The store: every read and write of the lldmix database goes through `Store`.

Returns plain values, numpy arrays and the frozen dataclasses of `rows.py` — never ORM objects. Each
write method is one transaction (all or nothing) and idempotent (upserts by the natural key), so a
re-run or a resumed run never duplicates rows. SQL is built by SQLAlchemy with bound parameters only.

`Store` is a facade: it owns the SQLAlchemy engine and the transaction, and forwards each public
method to one table group, a plain object built here with the one thing it needs (`transaction`):

    corpora.py  corpora, texts, domains            models.py  models, loglik vectors, domain logliks
    runs.py     runs, weights, KL, metrics, recipes stages.py  stage claims       jobs.py  the job queue

Shared helpers (retry on conflict, checksums) are in common.py; the row types in rows.py.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from lldmix_core.db import schema as S
from lldmix_core.db.store.corpora import Corpora
from lldmix_core.db.store.jobs import Jobs
from lldmix_core.db.store.models import Models
from lldmix_core.db.store.rows import (CorpusInfo, CorpusTexts, DomainLoglikRow, JobInfo, KLRow,
                                       ModelDomainLoglikRow, ModelInfo, RunInfo, RunKLRow)
from lldmix_core.db.store.runs import Runs
from lldmix_core.db.store.stages import Stages
from lldmix_core.faults import fault_point

__all__ = ["Store", "CorpusInfo", "CorpusTexts", "DomainLoglikRow", "JobInfo", "KLRow", "ModelDomainLoglikRow",
           "ModelInfo", "RunInfo", "RunKLRow"]


def _note_dml(state) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info["dml"] = True


def _forward(group: str, method):
    """A Store method that calls `method` on the table group `self.<group>` (same name, signature, docs)."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        return method(getattr(self, group), *args, **kwargs)

    return call


class Store:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)
        event.listen(self._session, "do_orm_execute", _note_dml)
        self.corpora = Corpora(self.transaction)
        self.models = Models(self.transaction)
        self.runs = Runs(self.transaction)
        self.stages = Stages(self.transaction)
        self.jobs = Jobs(self.transaction)

    @classmethod
    def open(cls, url: str | None = None, *, check: bool = True) -> "Store":
        from lldmix_core.config import get_settings
        from lldmix_core.db.engine import make_engine, require_current, require_database_file

        url = url or get_settings().db_url
        if check:  # a missing file is refused before make_engine creates it (and the home)
            require_database_file(url)
        engine = make_engine(url)
        if check:
            require_current(engine)
        return cls(engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._session() as session, session.begin():
            yield session
            wrote = bool(session.new or session.dirty or session.deleted) or session.info.pop("dml", False)
            session.flush()
            if wrote:
                fault_point("db_commit")  # the writes are sent, COMMIT is not: a crash here must lose them all

    def data_version(self) -> str:
        """A cheap value that changes whenever jobs, runs or results change: the app's cache key."""
        with self.transaction() as s:
            parts = [
                s.scalar(select(func.count()).select_from(S.Job)),
                s.scalar(select(func.max(S.Job.heartbeat_at))),
                s.scalar(select(func.max(S.Job.finished_at))),
                s.scalar(select(func.count()).select_from(S.Run)),
                s.scalar(select(func.max(S.Run.finished_at))),
                s.scalar(select(func.count()).select_from(S.KLResult)),
                s.scalar(select(func.count()).select_from(S.Recipe)),
                s.scalar(select(func.count()).select_from(S.Model)),
            ]
        return "|".join(str(p) for p in parts)

    # corpora, texts, domains
    save_corpus = _forward("corpora", Corpora.save_corpus)
    get_corpus = _forward("corpora", Corpora.get_corpus)
    list_corpora = _forward("corpora", Corpora.list_corpora)
    load_texts = _forward("corpora", Corpora.load_texts)

    # models and their scores
    register_model = _forward("models", Models.register_model)
    get_model = _forward("models", Models.get_model)
    find_model = _forward("models", Models.find_model)
    list_models = _forward("models", Models.list_models)
    get_loglik_vector = _forward("models", Models.get_loglik_vector)
    save_scores = _forward("models", Models.save_scores)
    get_domain_logliks = _forward("models", Models.get_domain_logliks)
    loglik_matrix = _forward("models", Models.loglik_matrix)
    domain_loglik_table = _forward("models", Models.domain_loglik_table)

    # runs and their results
    start_run = _forward("runs", Runs.start_run)
    finish_run = _forward("runs", Runs.finish_run)
    update_run_tau = _forward("runs", Runs.update_run_tau)
    update_run_models = _forward("runs", Runs.update_run_models)
    set_mlflow_run_id = _forward("runs", Runs.set_mlflow_run_id)
    get_run = _forward("runs", Runs.get_run)
    get_run_by_key = _forward("runs", Runs.get_run_by_key)
    final_model_id = _forward("runs", Runs.final_model_id)
    runs_with_last_kl = _forward("runs", Runs.runs_with_last_kl)
    list_runs = _forward("runs", Runs.list_runs)
    save_weights = _forward("runs", Runs.save_weights)
    get_weights = _forward("runs", Runs.get_weights)
    save_kl = _forward("runs", Runs.save_kl)
    get_kl = _forward("runs", Runs.get_kl)
    save_metrics = _forward("runs", Runs.save_metrics)
    save_metrics_many = _forward("runs", Runs.save_metrics_many)
    get_metrics = _forward("runs", Runs.get_metrics)
    kl_rows = _forward("runs", Runs.kl_rows)
    save_recipe = _forward("runs", Runs.save_recipe)
    get_recipe = _forward("runs", Runs.get_recipe)
    list_recipes = _forward("runs", Runs.list_recipes)

    # coordination: stage claims and the job queue
    get_stage = _forward("stages", Stages.get_stage)
    trained_weights = _forward("stages", Stages.trained_weights)
    finish_stage = _forward("stages", Stages.finish_stage)
    claim_stage = _forward("stages", Stages.claim_stage)
    heartbeat_stage = _forward("stages", Stages.heartbeat_stage)
    release_stage = _forward("stages", Stages.release_stage)
    enqueue = _forward("jobs", Jobs.enqueue)
    claim_job = _forward("jobs", Jobs.claim_job)
    update_job = _forward("jobs", Jobs.update_job)
    finish_job = _forward("jobs", Jobs.finish_job)
    request_cancel = _forward("jobs", Jobs.request_cancel)
    get_job = _forward("jobs", Jobs.get_job)
    list_jobs = _forward("jobs", Jobs.list_jobs)
