"""Stage inputs: the evaluation corpus, the per-domain training streams, and the models a spec names.

Everything here is keyed by content: the corpus by its content hash, token streams by the training
files' identity and the tokenizer's, trained models by the hash of what trained them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lldmix_core.config import Settings, confine_path
from lldmix_core.corpus.eval import build_eval_corpus
from lldmix_core.corpus.local import FROZEN_CONTENT_HASH, FROZEN_NAME, frozen_paths
from lldmix_core.corpus.records import iter_records
from lldmix_core.corpus.streams import DomainStreams
from lldmix_core.db.store import CorpusInfo, CorpusTexts, Store
from lldmix_core.errors import UserError
from lldmix_core.models import NanoGPTConfig
from lldmix_core.spec import ArchSpec, CorpusSpec
from lldmix_core.tokenizers import Tokenizer
from lldmix_core.walk import expand_glob, has_magic, walk_files


@dataclass(frozen=True)
class PreparedCorpus:
    info: CorpusInfo
    texts: CorpusTexts
    streams: DomainStreams
    domains: tuple[str, ...]  # sorted; the order of every weight vector
    train_identity: str  # hash of the training source files + tokenizer + domain filter


def _files_identity(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}".encode())
        with open(p, "rb") as f:  # content, not mtime: the same files give the same key anywhere
            while block := f.read(1 << 22):
                h.update(block)
    return h.hexdigest()


def _source_files(path: Path) -> list[Path]:
    if path.is_dir():  # each real file once, whatever symlinked folders the folder holds
        return [p for p in walk_files(path)[0] if not p.name.startswith(".")]
    if has_magic(path):
        return expand_glob(path)[0]
    if not path.exists():
        raise UserError(f"corpus file {path} does not exist")
    return [path]


def corpus_sources(spec: CorpusSpec, settings: Settings) -> tuple[Path, Path]:
    """(train source, eval source) paths; `local` is the frozen mini-Pile shipped with lldmix (no build)."""
    if spec.local:
        return frozen_paths()
    train = confine_path(spec.train, settings, "corpus.train")
    evals = confine_path(spec.eval, settings, "corpus.eval") if spec.eval else train
    return train, evals


def prepare_eval_corpus(store: Store, spec: CorpusSpec, settings: Settings, name: str) -> CorpusInfo:
    _, eval_src = corpus_sources(spec, settings)
    # the frozen corpus is named by version and hash, not by where this checkout happens to live
    source = f"{FROZEN_NAME} (sha256 {FROZEN_CONTENT_HASH[:12]})" if spec.local else str(eval_src)
    identity = {"minipile": FROZEN_NAME, "minipile_sha256": FROZEN_CONTENT_HASH} if spec.local else None
    records = iter_records(eval_src, text_field=spec.text_field, domain_field=spec.domain_field)
    if spec.domains:
        wanted = set(spec.domains)
        records = ((d, t) for d, t in records if d in wanted)
    corpus = build_eval_corpus(
        records, per_domain=spec.eval_per_domain, seed=spec.eval_seed, max_bytes=spec.max_bytes,
        min_bytes=spec.min_bytes, name=name, source=source, domains=spec.domains, identity=identity,
        total=spec.eval_total,
    )
    corpus_id = store.save_corpus(
        name=corpus.name, content_hash=corpus.content_hash, source=corpus.source,
        settings=corpus.settings, texts=list(corpus.texts), domains=list(corpus.text_domains),
    )
    return store.get_corpus(corpus_id)


def prepare_corpus(store: Store, spec: CorpusSpec, settings: Settings, tokenizer: Tokenizer, name: str) -> PreparedCorpus:
    info = prepare_eval_corpus(store, spec, settings, name)
    train_src, _ = corpus_sources(spec, settings)
    ident = hashlib.sha256(
        "|".join([
            _files_identity(_source_files(train_src)), tokenizer.identity, spec.text_field,
            spec.domain_field, ",".join(spec.domains or ()),
        ]).encode()
    ).hexdigest()
    records = iter_records(train_src, text_field=spec.text_field, domain_field=spec.domain_field)
    if spec.domains:
        wanted = set(spec.domains)
        records = ((d, t) for d, t in records if d in wanted)
    streams = DomainStreams.build(records, tokenizer, settings.tokens_dir / ident[:16])
    missing = [d for d in info.domains if d not in streams.domains]
    if missing:
        raise UserError(f"corpus: domains {missing} have evaluation texts but no training text in {train_src}")
    return PreparedCorpus(info, store.load_texts(info.id), streams, tuple(info.domains), ident)


def nanogpt_config(arch: ArchSpec, tokenizer: Tokenizer) -> NanoGPTConfig:
    vocab = arch.vocab_size or ((tokenizer.vocab_size + 63) // 64) * 64
    if vocab < tokenizer.vocab_size:
        raise UserError(f"arch.vocab_size {vocab} is smaller than tokenizer {tokenizer.name}'s {tokenizer.vocab_size}")
    return NanoGPTConfig(
        vocab_size=vocab, block_size=arch.block_size, n_layer=arch.n_layer, n_head=arch.n_head,
        n_embd=arch.n_embd, dropout=arch.dropout,
    )


def mixture(domains: tuple[str, ...], weights: dict[str, float] | None, multipliers: dict[str, float] | None,
            field: str) -> np.ndarray:
    """Weights [K] on the simplex from explicit weights or uniform × multipliers; unknown domains rejected."""
    given = weights if weights is not None else (multipliers or {})
    unknown = sorted(set(given) - set(domains))
    if unknown:
        raise UserError(f"{field}: unknown domains {unknown}; the corpus has {list(domains)}")
    if weights is not None:
        w = np.array([float(weights.get(d, 0.0)) for d in domains])
    else:
        w = np.array([float((multipliers or {}).get(d, 1.0)) for d in domains])
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise UserError(f"{field}: weights must be finite, ≥ 0 and not all zero")
    return w / w.sum()
