"""Store group for `models`, `loglik_vectors` and `domain_logliks`: register a model once by name and
fingerprint, store its text-level log-likelihoods (nats/text, float32 blobs with a checksum) on a
corpus together with their per-domain sums, and read them back. Keeps the corpus-layout cache."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lldmix_core.db import schema as S
from lldmix_core.db.store.common import Transaction, blob_checksum, retry_on_conflict, to_row
from lldmix_core.db.store.rows import DomainLoglikRow, ModelDomainLoglikRow, ModelInfo
from lldmix_core.errors import UserError


class Models:
    def __init__(self, transaction: Transaction):
        self.transaction = transaction
        self._layouts: dict[tuple[int, str | None], tuple[np.ndarray, np.ndarray]] = {}

    @retry_on_conflict
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
            return to_row(ModelInfo, m)

    def find_model(self, fingerprint: str) -> ModelInfo | None:
        with self.transaction() as s:
            m = s.scalars(select(S.Model).where(S.Model.fingerprint == fingerprint).order_by(S.Model.id)).first()
            return to_row(ModelInfo, m) if m else None

    def list_models(self) -> list[ModelInfo]:
        with self.transaction() as s:
            return [to_row(ModelInfo, m) for m in s.scalars(select(S.Model).order_by(S.Model.id))]

    def get_loglik_vector(self, model_id: int, corpus_id: int, tokenizer_hash: str) -> tuple[np.ndarray, np.ndarray] | None:
        with self.transaction() as s:
            v = s.scalars(select(S.LoglikVector).where(
                S.LoglikVector.model_id == model_id, S.LoglikVector.corpus_id == corpus_id,
                S.LoglikVector.tokenizer_hash == tokenizer_hash)).first()
            if v is None:
                return None
            if blob_checksum(v.logliks, v.n_tokens) != v.checksum:
                raise UserError(f"loglik_vectors row {v.id} (model {model_id}, corpus {corpus_id}) fails its checksum: corrupt")
            ll = np.frombuffer(v.logliks, dtype="<f4").copy()
            nt = np.frombuffer(v.n_tokens, dtype="<i4").copy()
            if len(ll) != v.length or len(nt) != v.length:
                raise UserError(f"loglik_vectors row {v.id} has length {len(ll)}, expected {v.length}: corrupt")
            return ll, nt

    @retry_on_conflict
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
            checksum = blob_checksum(lb, tb)
            have = s.scalars(select(S.LoglikVector).where(S.LoglikVector.model_id == model_id,
                                                          S.LoglikVector.corpus_id == corpus_id,
                                                          S.LoglikVector.tokenizer_hash == tokenizer_hash)).first()
            if have is not None and have.checksum == checksum and have.length == len(ll):
                # stored already (by another worker scoring the same model): nothing to write. Not deleting
                # it is what lets N concurrent writers finish: each retry finds the winner's row
                return
            if have is not None:
                have.length, have.logliks, have.n_tokens, have.checksum = len(ll), lb, tb, checksum
            else:
                s.add(S.LoglikVector(model_id=model_id, corpus_id=corpus_id, tokenizer_hash=tokenizer_hash, length=len(ll),
                                     logliks=lb, n_tokens=tb, checksum=checksum))
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

    def domain_loglik_table(self, corpus_id: int) -> list[ModelDomainLoglikRow]:
        """Per-domain mean log-likelihood (nats/token, nats/byte) of every model scored on a corpus."""
        with self.transaction() as s:
            rows = s.execute(select(S.Model.id, S.Model.name, S.Model.run_id, S.Model.step, S.Domain.name,
                                    S.DomainLoglik.nats_per_token, S.DomainLoglik.nats_per_byte)
                             .join(S.DomainLoglik, S.DomainLoglik.model_id == S.Model.id)
                             .join(S.Domain, S.Domain.id == S.DomainLoglik.domain_id)
                             .where(S.DomainLoglik.corpus_id == corpus_id)).all()
        return [ModelDomainLoglikRow(*r) for r in rows]
