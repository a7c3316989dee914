"""The store: every read and write of the lldmix database goes through here.

Returns plain values, numpy arrays and frozen dataclasses — never ORM objects. Each write method is
one transaction (all or nothing) and idempotent (upserts by the natural key), so a re-run or a
resumed run never duplicates rows. SQL is built by SQLAlchemy with bound parameters only.

Over 400 lines for now: the split into a package by table group behind this same `Store` facade
(issue 11) is not done yet.
"""

from __future__ import annotations

import hashlib
import math
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator, Mapping, Sequence

import numpy as np
from sqlalchemy import Engine, and_, delete, event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from lldmix_core.db import schema as S
from lldmix_core.db.coordination import CoordinationMixin, JobInfo, _info, _retry_on_conflict, _same  # noqa: F401
from lldmix_core.errors import UserError
from lldmix_core.faults import fault_point


@dataclass(frozen=True)
class ModelInfo:
    id: int
    name: str
    kind: str
    source: str
    tokenizer: str
    tokenizer_hash: str
    n_params: int
    fingerprint: str
    config: dict
    run_id: int | None
    step: int | None
    created_at: datetime


@dataclass(frozen=True)
class CorpusInfo:
    id: int
    name: str
    content_hash: str
    source: str
    settings: dict
    n_texts: int
    n_bytes: int
    domains: tuple[str, ...]  # sorted


@dataclass(frozen=True)
class CorpusTexts:
    texts: list[str]
    domains: list[str]  # domain of each text
    n_bytes: np.ndarray  # int64 [N], UTF-8 bytes, in position order


@dataclass(frozen=True)
class RunInfo:
    id: int
    key: str
    name: str
    spec_hash: str
    parent_id: int | None
    job_id: int | None
    method: str
    seed: int | None
    tau: float | None
    status: str
    base_model_id: int | None
    target_model_id: int | None
    corpus_id: int | None
    final_model_id: int | None
    mlflow_run_id: str | None
    config: dict
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    tau_setting: str | None = None  # the spec's τ as text ("auto", "inf", "1.0"); None: the method has no τ
    git_commit: str | None = None
    provenance: dict | None = None  # provenance.collect(): code, numerics and library versions, device, hashes


@dataclass(frozen=True)
class KLRow:
    """One stored KL(target ‖ model) estimate. estimator "modelmap[-clipF]": the model map's second-order
    estimate over the evaluation corpus; "sampled": texts drawn from the target (± stderr over n_samples)."""

    step: int | None
    model_id: int
    reference_model_id: int
    corpus_id: int
    nats_per_text: float
    bits_per_byte: float
    gap_bits_per_byte: float | None  # target's minus model's mean log-likelihood, bits/byte (model map only)
    estimator: str
    stderr_bits_per_byte: float | None = None
    n_samples: int | None = None
    clip_threshold: float | None = None  # nats/text; None: no clipping


@dataclass(frozen=True)
class DomainLoglikRow:
    domain: str
    loglik_sum: float  # nats
    n_tokens: int
    n_bytes: int
    nats_per_token: float
    nats_per_byte: float


def _blob_checksum(logliks: bytes, n_tokens: bytes) -> str:
    return hashlib.sha256(logliks + n_tokens).hexdigest()


def _note_dml(state) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info["dml"] = True


def _now() -> datetime:
    return S.utcnow()


class Store(CoordinationMixin):
    def __init__(self, engine: Engine):
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)
        event.listen(self._session, "do_orm_execute", _note_dml)
        self._layouts: dict[tuple[int, str | None], tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def open(cls, url: str | None = None, *, check: bool = True) -> "Store":
        from lldmix_core.config import get_settings
        from lldmix_core.db.engine import make_engine, require_current

        engine = make_engine(url or get_settings().db_url)
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

    # ------------------------------------------------------------------ domains
    @staticmethod
    def _domain_ids(session: Session, names) -> dict[str, int]:
        names = sorted(set(names))
        have = dict(session.execute(select(S.Domain.name, S.Domain.id).where(S.Domain.name.in_(names))).all())
        for n in names:
            if n not in have:
                d = S.Domain(name=n)
                session.add(d)
                session.flush()
                have[n] = d.id
        return have

    # ------------------------------------------------------------------ corpora
    @_retry_on_conflict
    def save_corpus(self, *, name: str, content_hash: str, source: str, settings: dict, texts: Sequence[str],
                    domains: Sequence[str]) -> int:
        if len(texts) != len(domains):
            raise ValueError("texts and domains differ in length")
        with self.transaction() as s:
            existing = s.scalar(select(S.Corpus.id).where(S.Corpus.content_hash == content_hash))
            if existing is not None:
                return existing
            encoded = [t.encode("utf-8") for t in texts]
            corpus = S.Corpus(name=name, content_hash=content_hash, source=source, settings=settings,
                              n_texts=len(texts), n_bytes=sum(map(len, encoded)))
            s.add(corpus)
            s.flush()
            ids = self._domain_ids(s, domains)
            s.execute(S.CorpusText.__table__.insert(), [
                {"corpus_id": corpus.id, "domain_id": ids[d], "position": i, "n_bytes": len(b),
                 "text_hash": hashlib.sha256(b).hexdigest(), "content": t}
                for i, (t, b, d) in enumerate(zip(texts, encoded, domains))
            ])
            return corpus.id

    def _corpus_info(self, s: Session, c: S.Corpus) -> CorpusInfo:
        doms = s.scalars(select(S.Domain.name).join(S.CorpusText, S.CorpusText.domain_id == S.Domain.id)
                         .where(S.CorpusText.corpus_id == c.id).distinct()).all()
        return CorpusInfo(c.id, c.name, c.content_hash, c.source, c.settings, c.n_texts, c.n_bytes, tuple(sorted(doms)))

    def get_corpus(self, ref: int | str) -> CorpusInfo:
        with self.transaction() as s:
            c = None
            if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
                c = s.get(S.Corpus, int(ref))
            if c is None and isinstance(ref, str):
                c = s.scalars(select(S.Corpus).where(S.Corpus.name == ref).order_by(S.Corpus.id.desc())).first()
                if c is None and len(ref) >= 8:
                    c = s.scalars(select(S.Corpus).where(S.Corpus.content_hash.startswith(ref, autoescape=True))).first()
            if c is None:
                raise UserError(f"corpus {ref!r} not found in the database (see `lldmix corpus list`)")
            return self._corpus_info(s, c)

    def list_corpora(self) -> list[CorpusInfo]:
        with self.transaction() as s:
            return [self._corpus_info(s, c) for c in s.scalars(select(S.Corpus).order_by(S.Corpus.id))]

    def load_texts(self, corpus_id: int) -> CorpusTexts:
        with self.transaction() as s:
            rows = s.execute(select(S.CorpusText.content, S.Domain.name, S.CorpusText.n_bytes)
                             .join(S.Domain, S.Domain.id == S.CorpusText.domain_id)
                             .where(S.CorpusText.corpus_id == corpus_id).order_by(S.CorpusText.position)).all()
        return CorpusTexts([r[0] for r in rows], [r[1] for r in rows], np.array([r[2] for r in rows], dtype=np.int64))

    # ------------------------------------------------------------------ models
    @_retry_on_conflict
    def register_model(self, *, name: str, kind: str, source: str, tokenizer: str, tokenizer_hash: str, n_params: int,
                       fingerprint: str, config: dict, run_id: int | None = None, step: int | None = None) -> int:
        with self.transaction() as s:
            m = s.scalars(select(S.Model).where(S.Model.name == name)).first()
            if m is not None and m.fingerprint != fingerprint and run_id is not None and (m.run_id, m.step) == (run_id, step):
                # a checkpoint re-made by a resumed run (numerics may differ, e.g. another thread count):
                # the interrupted attempt's checkpoint and everything computed from it are stale
                for table in (S.LoglikVector, S.DomainLoglik, S.KLResult):
                    s.execute(delete(table).where(table.model_id == m.id))
                m.fingerprint, m.source, m.config, m.n_params = fingerprint, source, config, int(n_params)
                return m.id
            if m is not None:
                if m.fingerprint != fingerprint:
                    raise UserError(f"model name {name!r} is already taken by a different model (fingerprint "
                                    f"{m.fingerprint[:12]} vs {fingerprint[:12]}): choose another name")
                return m.id
            m = S.Model(name=name, kind=kind, source=source, tokenizer=tokenizer, tokenizer_hash=tokenizer_hash,
                        n_params=int(n_params), fingerprint=fingerprint, config=config, run_id=run_id, step=step)
            s.add(m)
            s.flush()
            return m.id

    def get_model(self, ref: int | str) -> ModelInfo:
        with self.transaction() as s:
            m = s.get(S.Model, int(ref)) if isinstance(ref, int) else None
            if m is None and isinstance(ref, str):
                m = s.scalars(select(S.Model).where(S.Model.name == ref)).first()
                if m is None and ref.isdigit():
                    m = s.get(S.Model, int(ref))
            if m is None:
                raise UserError(f"model {ref!r} not found in the database (see `lldmix model list`)")
            return _info(ModelInfo, m)

    def find_model(self, fingerprint: str) -> ModelInfo | None:
        with self.transaction() as s:
            m = s.scalars(select(S.Model).where(S.Model.fingerprint == fingerprint).order_by(S.Model.id)).first()
            return _info(ModelInfo, m) if m else None

    def list_models(self) -> list[ModelInfo]:
        with self.transaction() as s:
            return [_info(ModelInfo, m) for m in s.scalars(select(S.Model).order_by(S.Model.id))]

    # ------------------------------------------------------------------ scores
    def get_loglik_vector(self, model_id: int, corpus_id: int, tokenizer_hash: str) -> tuple[np.ndarray, np.ndarray] | None:
        with self.transaction() as s:
            v = s.scalars(select(S.LoglikVector).where(
                S.LoglikVector.model_id == model_id, S.LoglikVector.corpus_id == corpus_id,
                S.LoglikVector.tokenizer_hash == tokenizer_hash)).first()
            if v is None:
                return None
            if _blob_checksum(v.logliks, v.n_tokens) != v.checksum:
                raise UserError(f"loglik_vectors row {v.id} (model {model_id}, corpus {corpus_id}) fails its checksum: corrupt")
            ll = np.frombuffer(v.logliks, dtype="<f4").copy()
            nt = np.frombuffer(v.n_tokens, dtype="<i4").copy()
            if len(ll) != v.length or len(nt) != v.length:
                raise UserError(f"loglik_vectors row {v.id} has length {len(ll)}, expected {v.length}: corrupt")
            return ll, nt

    @_retry_on_conflict
    def save_scores(self, *, model_id: int, corpus_id: int, tokenizer_hash: str, logliks, n_tokens) -> None:
        ll = np.asarray(logliks, dtype=np.float64)
        nt = np.asarray(n_tokens, dtype=np.int64)
        if not np.all(np.isfinite(ll)):
            raise UserError(f"log-likelihoods of model {model_id} on corpus {corpus_id} contain NaN or infinite values")
        with self.transaction() as s:
            dom, nbytes = self._corpus_layout(s, corpus_id)
            if len(dom) != len(ll) or len(nt) != len(ll):
                raise UserError(f"scores for corpus {corpus_id}: {len(ll)} values for {len(dom)} texts")
            lb, tb = ll.astype("<f4").tobytes(), nt.astype("<i4").tobytes()
            s.execute(delete(S.LoglikVector).where(S.LoglikVector.model_id == model_id, S.LoglikVector.corpus_id == corpus_id,
                                                   S.LoglikVector.tokenizer_hash == tokenizer_hash))
            s.add(S.LoglikVector(model_id=model_id, corpus_id=corpus_id, tokenizer_hash=tokenizer_hash, length=len(ll),
                                 logliks=lb, n_tokens=tb, checksum=_blob_checksum(lb, tb)))
            s.execute(delete(S.DomainLoglik).where(S.DomainLoglik.model_id == model_id, S.DomainLoglik.corpus_id == corpus_id))
            for d in sorted(set(dom.tolist())):
                m = dom == d
                total, tok, byt = float(ll[m].sum()), int(nt[m].sum()), int(nbytes[m].sum())
                s.add(S.DomainLoglik(model_id=model_id, corpus_id=corpus_id, domain_id=int(d), loglik_sum=total,
                                     n_tokens=tok, n_bytes=byt, nats_per_token=total / max(tok, 1),
                                     nats_per_byte=total / max(byt, 1)))

    def _corpus_layout(self, s: Session, corpus_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(domain id, bytes) of each text of a corpus, in position order. A corpus never changes after
        it is saved, so this is cached by (id, content hash): scoring 1,000 models reads it once."""
        h = s.scalar(select(S.Corpus.content_hash).where(S.Corpus.id == corpus_id))
        key = (corpus_id, h)
        if key not in self._layouts:
            rows = s.execute(select(S.CorpusText.domain_id, S.CorpusText.n_bytes).where(S.CorpusText.corpus_id == corpus_id)
                             .order_by(S.CorpusText.position)).all()
            self._layouts[key] = (np.array([r[0] for r in rows], dtype=np.int64),
                                  np.array([r[1] for r in rows], dtype=np.int64))
        return self._layouts[key]

    def get_domain_logliks(self, model_id: int, corpus_id: int) -> list[DomainLoglikRow]:
        with self.transaction() as s:
            rows = s.execute(select(S.Domain.name, S.DomainLoglik).join(S.Domain, S.Domain.id == S.DomainLoglik.domain_id)
                             .where(S.DomainLoglik.model_id == model_id, S.DomainLoglik.corpus_id == corpus_id)
                             .order_by(S.Domain.name)).all()
            return [DomainLoglikRow(n, r.loglik_sum, r.n_tokens, r.n_bytes, r.nats_per_token, r.nats_per_byte) for n, r in rows]

    def loglik_matrix(self, corpus_id: int, model_ids: Sequence[int] | None = None) -> tuple[list[int], np.ndarray]:
        """Text-level log-likelihoods (nats/text) of models on a corpus: (model ids, float64 [M, N])."""
        with self.transaction() as s:
            q = select(S.LoglikVector.model_id, S.LoglikVector.logliks).where(S.LoglikVector.corpus_id == corpus_id)
            if model_ids is not None:
                q = q.where(S.LoglikVector.model_id.in_(list(model_ids)))
            rows = s.execute(q.order_by(S.LoglikVector.model_id)).all()
        if not rows:
            return [], np.zeros((0, 0))
        return [r[0] for r in rows], np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows]).astype(np.float64)

    # ------------------------------------------------------------------ runs
    @_retry_on_conflict
    def start_run(self, *, key: str, name: str, spec_hash: str, method: str, seed: int | None = None,
                  tau: float | None = None, tau_setting: str | None = None, parent_id: int | None = None,
                  job_id: int | None = None,
                  config: dict | None = None, base_model_id: int | None = None, target_model_id: int | None = None,
                  corpus_id: int | None = None, provenance: dict | None = None) -> int:
        with self.transaction() as s:
            r = s.scalars(select(S.Run).where(S.Run.key == key)).first()
            if r is not None:
                r.status, r.error, r.finished_at = "running", None, None
                if provenance is not None:  # resumed: the code that finishes it is the code that counts
                    r.provenance, r.git_commit = provenance, provenance.get("git_commit")
                if job_id is not None:
                    r.job_id = job_id
                return r.id
            r = S.Run(key=key, name=name, spec_hash=spec_hash, method=method, seed=seed, tau=tau, tau_setting=tau_setting,
                      parent_id=parent_id,
                      job_id=job_id, config=config or {}, base_model_id=base_model_id, target_model_id=target_model_id,
                      corpus_id=corpus_id, status="running", provenance=provenance,
                      git_commit=(provenance or {}).get("git_commit"))
            s.add(r)
            s.flush()
            return r.id

    def finish_run(self, run_id: int, *, status: str, final_model_id: int | None = None, error: str | None = None) -> None:
        with self.transaction() as s:
            values = {"status": status, "error": error, "finished_at": _now()}
            if final_model_id is not None:
                values["final_model_id"] = final_model_id
            s.execute(update(S.Run).where(S.Run.id == run_id).values(**values))

    def update_run_tau(self, run_id: int, tau: float) -> None:
        with self.transaction() as s:
            s.execute(update(S.Run).where(S.Run.id == run_id).values(tau=float(tau)))

    def update_run_models(self, run_id: int, *, base_model_id: int | None = None, final_model_id: int | None = None) -> None:
        values = {k: v for k, v in {"base_model_id": base_model_id, "final_model_id": final_model_id}.items() if v is not None}
        if values:
            with self.transaction() as s:
                s.execute(update(S.Run).where(S.Run.id == run_id).values(**values))

    def set_mlflow_run_id(self, run_id: int, mlflow_run_id: str) -> None:
        with self.transaction() as s:
            s.execute(update(S.Run).where(S.Run.id == run_id).values(mlflow_run_id=mlflow_run_id))

    def get_run(self, run_id: int) -> RunInfo:
        with self.transaction() as s:
            r = s.get(S.Run, run_id)
            if r is None:
                raise UserError(f"run {run_id} not found")
            return _info(RunInfo, r)

    def get_run_by_key(self, key: str) -> RunInfo | None:
        """The run with this content key, or None."""
        with self.transaction() as s:
            r = s.scalars(select(S.Run).where(S.Run.key == key)).first()
            return _info(RunInfo, r) if r is not None else None

    def final_model_id(self, run_id: int, step: int) -> int | None:
        """The id of the model a run registered at `step` (its final model at its last step), or None."""
        with self.transaction() as s:
            return s.scalars(select(S.Model.id).where(S.Model.run_id == run_id, S.Model.step == step)
                             .order_by(S.Model.id)).first()

    def runs_with_last_kl(self) -> list[tuple[RunInfo, dict | None]]:
        """Every run with its KL row at its last evaluated step ({step, nats_per_text, bits_per_byte,
        gap_bits_per_byte}, or None) — one query, for the dashboard's runs table."""
        last = (select(S.KLResult.run_id, func.max(S.KLResult.step).label("step"))
                .group_by(S.KLResult.run_id).subquery())
        with self.transaction() as s:
            rows = s.execute(select(S.Run, S.KLResult)
                             .outerjoin(last, last.c.run_id == S.Run.id)
                             .outerjoin(S.KLResult, (S.KLResult.run_id == S.Run.id) & (S.KLResult.step == last.c.step))
                             .order_by(S.Run.id, S.KLResult.id)).all()
            out: dict[int, tuple[RunInfo, dict | None]] = {}
            for run, k in rows:
                if run.id not in out or (out[run.id][1] is None and k is not None):
                    out[run.id] = (_info(RunInfo, run), None if k is None else {
                        "step": k.step, "nats_per_text": k.nats_per_text, "bits_per_byte": k.bits_per_byte,
                        "gap_bits_per_byte": k.gap_bits_per_byte})
        return list(out.values())

    def list_runs(self, *, spec_hash: str | None = None, parent_id: int | None = None, job_id: int | None = None) -> list[RunInfo]:
        q = select(S.Run)
        if spec_hash is not None:
            q = q.where(S.Run.spec_hash == spec_hash)
        if parent_id is not None:
            q = q.where(S.Run.parent_id == parent_id)
        if job_id is not None:
            q = q.where(S.Run.job_id == job_id)
        with self.transaction() as s:
            return [_info(RunInfo, r) for r in s.scalars(q.order_by(S.Run.id))]

    @_retry_on_conflict
    def save_weights(self, run_id: int, step: int, weights: Mapping[str, float], *, tau: float | None, method: str) -> None:
        w = {d: float(v) for d, v in weights.items()}
        if any(not math.isfinite(v) or v < 0 for v in w.values()) or abs(sum(w.values()) - 1) > 1e-6:
            raise UserError(f"run {run_id} step {step}: weights are not on the simplex: {w}")
        with self.transaction() as s:
            ids = self._domain_ids(s, w)
            s.execute(delete(S.WeightEstimate).where(S.WeightEstimate.run_id == run_id, S.WeightEstimate.step == step))
            s.execute(S.WeightEstimate.__table__.insert(), [
                {"run_id": run_id, "step": int(step), "domain_id": ids[d], "weight": v, "tau": tau, "method": method}
                for d, v in w.items()])

    def get_weights(self, run_id: int) -> dict[int, dict[str, float]]:
        with self.transaction() as s:
            rows = s.execute(select(S.WeightEstimate.step, S.Domain.name, S.WeightEstimate.weight)
                             .join(S.Domain, S.Domain.id == S.WeightEstimate.domain_id)
                             .where(S.WeightEstimate.run_id == run_id).order_by(S.WeightEstimate.step, S.Domain.name)).all()
        out: dict[int, dict[str, float]] = {}
        for step, d, w in rows:
            out.setdefault(step, {})[d] = w
        return out

    @_retry_on_conflict
    def save_kl(self, *, run_id: int | None, step: int | None, model_id: int, reference_model_id: int, corpus_id: int,
                nats_per_text: float, bits_per_byte: float, gap_bits_per_byte: float | None, estimator: str,
                stderr_bits_per_byte: float | None = None, n_samples: int | None = None,
                clip_threshold: float | None = None) -> None:
        with self.transaction() as s:
            s.execute(delete(S.KLResult).where(and_(
                _same(S.KLResult.run_id, run_id), _same(S.KLResult.step, step), S.KLResult.model_id == model_id,
                S.KLResult.reference_model_id == reference_model_id, S.KLResult.corpus_id == corpus_id,
                S.KLResult.estimator == estimator)))
            s.add(S.KLResult(run_id=run_id, step=step, model_id=model_id, reference_model_id=reference_model_id,
                             corpus_id=corpus_id, nats_per_text=float(nats_per_text), bits_per_byte=float(bits_per_byte),
                             gap_bits_per_byte=None if gap_bits_per_byte is None else float(gap_bits_per_byte),
                             estimator=estimator, n_samples=n_samples,
                             stderr_bits_per_byte=None if stderr_bits_per_byte is None else float(stderr_bits_per_byte),
                             clip_threshold=None if clip_threshold is None else float(clip_threshold)))

    def get_kl(self, run_id: int) -> list[KLRow]:
        with self.transaction() as s:
            rows = s.scalars(select(S.KLResult).where(S.KLResult.run_id == run_id).order_by(S.KLResult.step)).all()
            return [KLRow(**{f: getattr(r, f) for f in KLRow.__dataclass_fields__}) for r in rows]

    def save_metrics(self, run_id: int, step: int, metrics: Mapping[str, float]) -> None:
        self.save_metrics_many(run_id, [(step, metrics)])

    @_retry_on_conflict
    def save_metrics_many(self, run_id: int, items: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        """Per-step scalar metrics, many steps in one transaction (upsert by run, key, step)."""
        with self.transaction() as s:
            for step, metrics in items:
                for k, v in metrics.items():
                    s.execute(delete(S.RunMetric).where(S.RunMetric.run_id == run_id, S.RunMetric.key == k,
                                                        S.RunMetric.step == step))
                    s.add(S.RunMetric(run_id=run_id, key=k, step=int(step), value=float(v)))

    def get_metrics(self, run_id: int) -> list[dict]:
        with self.transaction() as s:
            rows = s.scalars(select(S.RunMetric).where(S.RunMetric.run_id == run_id)
                             .order_by(S.RunMetric.key, S.RunMetric.step)).all()
            return [{"key": r.key, "step": r.step, "value": r.value} for r in rows]

    # ------------------------------------------------------------------ recipes
    @_retry_on_conflict
    def save_recipe(self, *, name: str, method: str, weights: Mapping[str, float], provenance: dict,
                    run_id: int | None = None) -> int:
        from lldmix_core.recipes import check_weights

        w = {d: float(v) for d, v in weights.items()}
        check_weights(w, f"recipe {name}")
        with self.transaction() as s:
            r = s.scalars(select(S.Recipe).where(S.Recipe.name == name)).first()
            if r is None:
                r = S.Recipe(name=name, method=method, weights=w, provenance=provenance, run_id=run_id)
                s.add(r)
            else:
                r.method, r.weights, r.provenance, r.run_id = method, w, provenance, run_id
            s.flush()
            return r.id

    @staticmethod
    def _recipe_dict(r: S.Recipe) -> dict:
        return {"id": r.id, "name": r.name, "method": r.method, "weights": dict(r.weights),
                "provenance": dict(r.provenance), "run_id": r.run_id, "created_at": r.created_at}

    def get_recipe(self, ref: int | str) -> dict:
        with self.transaction() as s:
            r = s.get(S.Recipe, ref) if isinstance(ref, int) else s.scalars(select(S.Recipe).where(S.Recipe.name == ref)).first()
            if r is None:
                raise UserError(f"recipe {ref!r} not found (see `lldmix recipe list`)")
            return self._recipe_dict(r)

    def list_recipes(self) -> list[dict]:
        with self.transaction() as s:
            return [self._recipe_dict(r) for r in s.scalars(select(S.Recipe).order_by(S.Recipe.id))]

    # ------------------------------------------------------------------ for the dashboard
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

    def kl_rows(self, parent_id: int) -> list[dict]:
        """KL to the target at every evaluated step of every run under a spec's parent run."""
        with self.transaction() as s:
            rows = s.execute(select(S.Run.id, S.Run.name, S.Run.method, S.Run.seed, S.Run.tau_setting, S.KLResult.step,
                                    S.KLResult.nats_per_text, S.KLResult.bits_per_byte, S.KLResult.gap_bits_per_byte,
                                    S.KLResult.estimator, S.KLResult.stderr_bits_per_byte, S.KLResult.model_id,
                                    S.KLResult.corpus_id)
                             .join(S.KLResult, S.KLResult.run_id == S.Run.id).where(S.Run.parent_id == parent_id)
                             .order_by(S.Run.id, S.KLResult.step)).all()
        return [{"run_id": r[0], "run": r[1], "method": r[2], "seed": r[3], "tau": r[4],
                 "step": r[5], "nats_per_text": r[6], "bits_per_byte": r[7], "gap_bits_per_byte": r[8],
                 "estimator": r[9], "stderr_bits_per_byte": r[10], "model_id": r[11], "corpus_id": r[12]} for r in rows]

    def domain_loglik_table(self, corpus_id: int) -> list[dict]:
        """Per-domain mean log-likelihood (nats/token, nats/byte) of every model scored on a corpus."""
        with self.transaction() as s:
            rows = s.execute(select(S.Model.id, S.Model.name, S.Model.run_id, S.Model.step, S.Domain.name,
                                    S.DomainLoglik.nats_per_token, S.DomainLoglik.nats_per_byte)
                             .join(S.DomainLoglik, S.DomainLoglik.model_id == S.Model.id)
                             .join(S.Domain, S.Domain.id == S.DomainLoglik.domain_id)
                             .where(S.DomainLoglik.corpus_id == corpus_id)).all()
        return [{"model_id": r[0], "model": r[1], "run_id": r[2], "step": r[3], "domain": r[4],
                 "nats_per_token": r[5], "nats_per_byte": r[6]} for r in rows]
