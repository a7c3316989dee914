"""Shared benchmark helpers: real evaluation texts from the local mini-Pile, and a timer."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch


def eval_texts(per_domain: int = 8, seed: int = 0) -> list[str]:
    """Evaluation chunks (≤ 1024 bytes) from the local mini-Pile, `per_domain` per domain."""
    from lldmix_core.corpus.eval import build_eval_corpus
    from lldmix_core.corpus.local import build_local_minipile
    from lldmix_core.corpus.records import iter_records

    out = Path(tempfile.gettempdir()) / "lldmix-bench-minipile"
    build_local_minipile(out)
    corpus = build_eval_corpus(iter_records(out / "val.jsonl"), per_domain=per_domain, seed=seed, name="bench", source=str(out))
    return list(corpus.texts)


def best_of(fn, repeats: int = 3) -> float:
    """Fastest wall time (seconds) of `repeats` calls: the least disturbed by other work on the machine."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def setup_threads(n: int = 2) -> None:
    torch.set_num_threads(n)
