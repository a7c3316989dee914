"""Score a model on an evaluation corpus through the store: reuse what is already there.

Results are keyed by (model fingerprint, corpus content hash, tokenizer identity): a model whose
vector is in the database is not run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lldmix_core.db.store import CorpusTexts, Store
from lldmix_core.errors import UserError
from lldmix_core.mathcore import domain_means  # noqa: F401  (pure numpy; re-exported for the engine)
from lldmix_core.models import load_model
from lldmix_core.models.base import LanguageModel
from lldmix_core.scoring import score_texts


@dataclass(frozen=True)
class ScoredModel:
    model_id: int
    loglik: np.ndarray  # float64 [N], nats/text
    n_tokens: np.ndarray  # int64 [N]
    computed: bool  # False when found in the database


def register_model(
    store: Store, lm: LanguageModel, name: str, *, source: str | None = None, run_id: int | None = None,
    step: int | None = None, fingerprint: str | None = None,
) -> int:
    return store.register_model(
        name=name,
        kind=lm.kind,
        source=source if source is not None else lm.source,
        tokenizer=lm.tokenizer.name,
        tokenizer_hash=lm.tokenizer.identity,
        n_params=lm.n_params,
        fingerprint=fingerprint or lm.fingerprint(),
        config=lm.config,
        run_id=run_id,
        step=step,
    )


def score_model(
    store: Store, lm: LanguageModel, model_id: int, corpus_id: int, texts: CorpusTexts, *,
    batch_tokens: int = 8192, progress: bool = False,
) -> ScoredModel:
    """Text-level log-likelihoods of `lm` on the corpus, from the database when already stored."""
    cached = store.get_loglik_vector(model_id, corpus_id, lm.tokenizer.identity)
    if cached is not None:
        ll, nt = cached
        return ScoredModel(model_id, ll.astype(np.float64), nt.astype(np.int64), computed=False)
    scores = score_texts(lm, texts.texts, batch_tokens=batch_tokens, progress=progress)
    store.save_scores(
        model_id=model_id, corpus_id=corpus_id, tokenizer_hash=lm.tokenizer.identity,
        logliks=scores.loglik, n_tokens=scores.n_tokens,
    )
    # read back what was stored (float32) so cached and fresh results are the same numbers
    ll, nt = store.get_loglik_vector(model_id, corpus_id, lm.tokenizer.identity)
    return ScoredModel(model_id, ll.astype(np.float64), nt.astype(np.int64), computed=True)


def score_model_sharded(
    store: Store, lm: LanguageModel, model_id: int, corpus_id: int, texts: CorpusTexts, *, batch_tokens: int = 8192,
) -> ScoredModel | None:
    """`score_model` with the texts split across torchrun's ranks; rank 0 merges and stores
    (and returns the result), the other ranks return None."""
    import torch.distributed as dist

    from lldmix_core.distributed import shard, world

    rank, size = world()
    cached = store.get_loglik_vector(model_id, corpus_id, lm.tokenizer.identity) if rank == 0 else None
    if _agree(cached is not None):
        return score_model(store, lm, model_id, corpus_id, texts) if rank == 0 else None
    idx = shard(list(range(len(texts.texts))), rank, size)
    part = score_texts(lm, [texts.texts[i] for i in idx], batch_tokens=batch_tokens)
    gathered = [None] * size
    dist.all_gather_object(gathered, (idx, part.loglik, part.n_tokens))
    if rank != 0:
        return None
    ll = np.zeros(len(texts.texts))
    nt = np.zeros(len(texts.texts), dtype=np.int64)
    for ids, l, n in gathered:
        ll[ids], nt[ids] = l, n
    store.save_scores(model_id=model_id, corpus_id=corpus_id, tokenizer_hash=lm.tokenizer.identity, logliks=ll, n_tokens=nt)
    ll, nt = store.get_loglik_vector(model_id, corpus_id, lm.tokenizer.identity)
    return ScoredModel(model_id, ll.astype(np.float64), nt.astype(np.int64), computed=True)


def _agree(flag: bool) -> bool:
    from lldmix_core.distributed import broadcast_object

    return bool(broadcast_object(flag))


def load_stored_model(store: Store, checkpoints_dir: Path, model_id: int) -> LanguageModel:
    """A stored model: from its source, or for a run's evaluated model ("run:<id>") from the run's last
    checkpoint, which must be that very model (same weight fingerprint)."""
    info = store.get_model(model_id)
    if not info.source.startswith("run:"):
        return load_model(info.kind, info.source, tokenizer=info.tokenizer if info.kind == "hf" else None)
    run = store.get_run(int(info.source.split(":", 1)[1]))
    path = Path(checkpoints_dir) / run.key[:16] / "last.pt"
    if not path.is_file():
        raise UserError(f"{path}: the checkpoint of run {run.id} ({run.name}) is not on this machine (checkpoints "
                        "stay where a run trained; `lldmix db import` carries results only): copy that file from "
                        "the machine that trained the run, or delete the run from the database to train it again")
    lm = load_model("nanogpt", path)
    if lm.fingerprint() != info.fingerprint:
        raise UserError(f"{path}: holds another state than model {model_id} ({info.name}): the run's last "
                        "checkpoint is not the evaluated model")
    return lm
