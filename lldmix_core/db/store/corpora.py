"""Store group for the `corpora`, `texts` and `domains` tables: save a corpus once by content hash,
find it by id, name or hash prefix, read its texts back in position order."""

from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from lldmix_core.db import schema as S
from lldmix_core.db.store.common import Transaction, retry_on_conflict
from lldmix_core.db.store.rows import CorpusInfo, CorpusTexts
from lldmix_core.errors import UserError


def domain_ids(session: Session, names: Iterable[str]) -> dict[str, int]:
    """The id of each domain name, inserting the names not stored yet (inside the caller's transaction)."""
    names = sorted(set(names))
    have = dict(session.execute(select(S.Domain.name, S.Domain.id).where(S.Domain.name.in_(names))).all())
    for n in names:
        if n not in have:
            d = S.Domain(name=n)
            session.add(d)
            session.flush()
            have[n] = d.id
    return have


def _corpus_info(s: Session, c: S.Corpus) -> CorpusInfo:
    doms = s.scalars(select(S.Domain.name).join(S.CorpusText, S.CorpusText.domain_id == S.Domain.id)
                     .where(S.CorpusText.corpus_id == c.id).distinct()).all()
    return CorpusInfo(c.id, c.name, c.content_hash, c.source, c.settings, c.n_texts, c.n_bytes, tuple(sorted(doms)))


class Corpora:
    def __init__(self, transaction: Transaction):
        self.transaction = transaction

    @retry_on_conflict
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
            ids = domain_ids(s, domains)
            s.execute(S.CorpusText.__table__.insert(), [
                {"corpus_id": corpus.id, "domain_id": ids[d], "position": i, "n_bytes": len(b),
                 "text_hash": hashlib.sha256(b).hexdigest(), "content": t}
                for i, (t, b, d) in enumerate(zip(texts, encoded, domains))
            ])
            return corpus.id

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
            return _corpus_info(s, c)

    def list_corpora(self) -> list[CorpusInfo]:
        with self.transaction() as s:
            return [_corpus_info(s, c) for c in s.scalars(select(S.Corpus).order_by(S.Corpus.id))]

    def load_texts(self, corpus_id: int) -> CorpusTexts:
        with self.transaction() as s:
            rows = s.execute(select(S.CorpusText.content, S.Domain.name, S.CorpusText.n_bytes)
                             .join(S.Domain, S.Domain.id == S.CorpusText.domain_id)
                             .where(S.CorpusText.corpus_id == corpus_id).order_by(S.CorpusText.position)).all()
        return CorpusTexts([r[0] for r in rows], [r[1] for r in rows], np.array([r[2] for r in rows], dtype=np.int64))
