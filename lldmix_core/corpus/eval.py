"""The evaluation corpus: chunk every document, then a seeded sample of chunks per domain."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from lldmix_core.corpus.chunking import utf8_chunks
from lldmix_core.errors import UserError


@dataclass(frozen=True)
class EvalCorpus:
    name: str
    source: str
    settings: dict = field(hash=False)
    texts: tuple[str, ...]  # grouped by domain (domains sorted), seeded order inside each domain
    text_domains: tuple[str, ...]  # the domain of each text

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.text_domains)))

    @property
    def content_hash(self) -> str:
        """sha256 over the (domain, text) pairs in order and the settings that made them."""
        h = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode())
        for d, t in zip(self.text_domains, self.texts):
            h.update(d.encode() + b"\0" + t.encode() + b"\0")
        return h.hexdigest()


def build_eval_corpus(records: Iterable[tuple[str, str]], *, per_domain: int, seed: int = 42, max_bytes: int = 1024,
                      min_bytes: int = 256, name: str, source: str, domains: Sequence[str] | None = None,
                      identity: dict | None = None, total: int | None = None) -> EvalCorpus:
    """Chunk each document and sample `per_domain` chunks per domain with a seeded RNG.

    With `total`, instead sample `total` chunks without replacement from the pooled chunks of all
    domains (so each domain's share follows its share of the corpus's chunks, as the model map's
    10,000 texts follow the Pile); `per_domain` is then unused. A domain with fewer chunks keeps all
    of them; a requested domain with none is an error. `identity` (e.g. the frozen mini-Pile's name
    and content hash) joins the settings, so it enters the corpus's content hash and every run key."""
    chunks: dict[str, list[str]] = {d: [] for d in domains or ()}
    for domain, text in records:
        if domains is not None and domain not in chunks:
            continue
        chunks.setdefault(domain, []).extend(utf8_chunks(text, max_bytes, min_bytes))
    empty = sorted(d for d, c in chunks.items() if not c)
    if empty:
        raise UserError(f"corpus {source}: domain(s) {empty} have no text longer than {min_bytes} bytes")
    if not chunks:
        raise UserError(f"corpus {source}: no records")
    rng = np.random.default_rng(seed)
    texts, text_domains = [], []
    if total is not None:
        return _proportional(chunks, total, rng, seed=seed, max_bytes=max_bytes, min_bytes=min_bytes,
                             name=name, source=source, identity=identity)
    for d in sorted(chunks):
        pool = chunks[d]
        take = rng.permutation(len(pool))[: min(per_domain, len(pool))]
        texts += [pool[i] for i in take]
        text_domains += [d] * len(take)
    settings = {"max_bytes": max_bytes, "min_bytes": min_bytes, "per_domain": per_domain, "seed": seed,
                **(identity or {})}
    return EvalCorpus(name=name, source=source, settings=settings, texts=tuple(texts), text_domains=tuple(text_domains))


def _proportional(chunks: dict[str, list[str]], total: int, rng: np.random.Generator, *, seed: int, max_bytes: int,
                  min_bytes: int, name: str, source: str, identity: dict | None = None) -> EvalCorpus:
    """`total` chunks drawn without replacement from the pool of every domain's chunks (domains sorted,
    chunks in document order), then grouped by domain in drawn order."""
    pool = [(d, t) for d in sorted(chunks) for t in chunks[d]]
    if total > len(pool):
        raise UserError(f"corpus {source}: eval_total {total} exceeds the {len(pool)} chunks available")
    take = rng.permutation(len(pool))[:total]
    drawn = sorted(((pool[i][0], r) for r, i in enumerate(take)))  # by domain, then draw order
    texts = [pool[take[r]][1] for _, r in drawn]
    text_domains = [d for d, _ in drawn]
    settings = {"max_bytes": max_bytes, "min_bytes": min_bytes, "total": total, "seed": seed, **(identity or {})}
    return EvalCorpus(name=name, source=source, settings=settings, texts=tuple(texts), text_domains=tuple(text_domains))
