"""Where a quickstart seed's evaluation time goes, and what the alternatives would cost.

    python bench/eval_cost.py [--rounds 3]

Times, interleaved over `rounds` rounds on the quickstart's model (byte NanoGPT 2 × 64, context 256) and
evaluation corpus (the local mini-Pile, 24 texts per domain): 25 training steps (batch 16), scoring the
whole corpus (the model map; a Δ estimate when lld.estimate_texts_per_domain takes every text), scoring an
8-per-domain subsample, one exact domain Gram matrix (8 texts per domain), scoring the 128 × 256-token
draws of the sampled KL, and a weight fingerprint. Medians over rounds (wall seconds), and the load
average before and after: on busy cores compare the ratios, not the seconds.

It then counts the operations one seed of runs/quickstart.yaml does (5 runs × 300 steps; model map at
steps 100, 200, 300; 15 LLD schedule steps; iterative- and adjusted-LLD estimate Δ on the whole corpus,
adjusted-LLD with a Gram matrix) and prints the predicted split of the runs' time, before and after the
reuse of identical models' evaluations (eval_memo.py: adjusted-LLD's step-0 Δ scores, the oracle's final
model map), and for three spec changes that are not made (they change what the quickstart measures).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from common import setup_threads

from lldmix_core import mathcore as mc
from lldmix_core.corpus.eval import build_eval_corpus
from lldmix_core.corpus.local import build_local_minipile
from lldmix_core.corpus.records import iter_records
from lldmix_core.corpus.streams import DomainStreams
from lldmix_core.engine.lld import LLDStages
from lldmix_core.models import NanoGPTConfig, new_nanogpt
from lldmix_core.scoring import score_texts, score_token_ids
from lldmix_core.tokenizers import get_tokenizer
from lldmix_core.train import TrainConfig, train

STEPS, KL_STEPS, METHODS = 300, 3, 5  # the quickstart's run length, model-map steps, runs per seed


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(rounds: int) -> dict[str, float]:
    """Median wall seconds of each operation over interleaved rounds."""
    out = Path(tempfile.gettempdir()) / "lldmix-bench-minipile"
    build_local_minipile(out)
    tok = get_tokenizer("bytes")
    streams = DomainStreams.build(iter_records(out / "train.jsonl"), tok, Path(tempfile.gettempdir()) / "lldmix-bench-streams")
    corpus = build_eval_corpus(iter_records(out / "val.jsonl"), per_domain=24, seed=0, name="bench", source=str(out))
    texts, doms = list(corpus.texts), list(corpus.text_domains)
    domains = tuple(sorted(set(doms)))
    rng = np.random.default_rng(0)
    sub8 = [texts[i] for i in sorted(np.concatenate([rng.choice([i for i, d in enumerate(doms) if d == k],
                                                                min(8, doms.count(k)), replace=False) for k in domains]))]
    lm = new_nanogpt(NanoGPTConfig(n_layer=2, n_head=4, n_embd=64, block_size=256, vocab_size=320), "bytes", 0)
    spec = {n: SimpleNamespace(lld=SimpleNamespace(gram=SimpleNamespace(estimator="exact", texts_per_domain=n)),
                               arch=SimpleNamespace(block_size=256)) for n in (8, 4)}
    pc = SimpleNamespace(domains=domains, texts=SimpleNamespace(domains=doms, texts=texts))
    draws = np.random.default_rng(1).integers(0, 256, size=(128, 256)).tolist()
    cfg = TrainConfig(steps=25, batch_size=16, block_size=256, warmup_steps=5, seed=0)
    uniform = np.full(len(domains), 1 / len(domains))
    ops = {
        "train 25 steps": lambda: train(lm, streams, domains, cfg, uniform),
        "score corpus": lambda: score_texts(lm, texts),
        "score 8/domain": lambda: score_texts(lm, sub8),
        "Gram (exact, 8/domain)": lambda: LLDStages(None).gram(spec[8], lm, pc),
        "Gram (exact, 4/domain)": lambda: LLDStages(None).gram(spec[4], lm, pc),
        "score draws 128x256": lambda: score_token_ids(lm, draws),
        "fingerprint": lm.fingerprint,
    }
    times: dict[str, list[float]] = {k: [] for k in ops}
    for _ in range(rounds):
        for k, fn in ops.items():
            times[k].append(_timed(fn))
    print(f"{len(texts)} evaluation texts in {len(domains)} domains ({sum(len(t.encode()) for t in texts):,} bytes)")
    return {k: statistics.median(v) for k, v in times.items()}


def split(t: dict[str, float], *, maps: int, deltas: int, delta_op: str, grams: int, draws: int,
          gram_op: str = "Gram (exact, 8/domain)") -> str:
    """The predicted shares of one seed's run time (training, model map, Δ estimates, sampled KL)."""
    parts = {"training": METHODS * STEPS / 25 * t["train 25 steps"],
             "model map": maps * (t["score corpus"] + t["fingerprint"]),
             "Δ estimates": deltas * (t[delta_op] + t["fingerprint"]) + grams * t[gram_op],
             "sampled KL": draws * t["score draws 128x256"]}
    total = sum(parts.values())
    ev = (parts["model map"] + parts["Δ estimates"] + parts["sampled KL"]) / total
    return ", ".join(f"{k} {v / total:.0%}" for k, v in parts.items()) + f" → evaluation {ev:.0%}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    setup_threads()
    load0 = os.getloadavg()
    t = measure(args.rounds)
    load1 = os.getloadavg()
    for k, v in t.items():
        print(f"  {k:<24} {v:8.3f} s  ({v / t['score corpus']:.2f} × scoring the corpus)")
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f} (2 cores: above 3 the seconds are noise-bound)")
    n_sched = len(mc.lld_schedule(STEPS))
    print(f"one quickstart seed, predicted split of the runs' time ({n_sched} schedule steps):")
    print("  before:                    " + split(t, maps=METHODS * KL_STEPS, deltas=2 * n_sched, delta_op="score corpus",
                                                  grams=n_sched, draws=METHODS - 1))
    print("  identical models reused:   " + split(t, maps=METHODS * KL_STEPS - 1, deltas=2 * n_sched - 1,
                                                  delta_op="score corpus", grams=n_sched, draws=METHODS - 1))
    print("  + estimate_texts 8/domain: " + split(t, maps=METHODS * KL_STEPS - 1, deltas=2 * n_sched - 1,
                                                  delta_op="score 8/domain", grams=n_sched, draws=METHODS - 1))
    print("  + eval_steps [300] only:   " + split(t, maps=METHODS - 1, deltas=2 * n_sched - 1,
                                                  delta_op="score 8/domain", grams=n_sched, draws=METHODS - 1))
    print("  + Gram 4/domain:           " + split(t, maps=METHODS - 1, deltas=2 * n_sched - 1, delta_op="score 8/domain",
                                                  grams=n_sched, draws=METHODS - 1, gram_op="Gram (exact, 4/domain)"))


if __name__ == "__main__":
    main()
