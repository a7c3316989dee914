"""First-pass overhead: time iterative-LLD spends estimating weights, as a share of its training time.

    python bench/first_pass.py [--steps 500] [--per-domain 24] [--subsample 4 2]

Trains the quickstart's model (byte-level NanoGPT 2 × 128, context 256, batch 16) with iterative-LLD
twice in one process, side by side: estimating Δ at every schedule step on the whole evaluation
corpus (`per-domain` texts per domain, what the paper does), and on a seeded subsample of
`subsample` texts per domain (`lld.estimate_texts_per_domain`). Prints scoring seconds / training
seconds for each. Target: ≤ 10 %.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from common import setup_threads

from lldmix_core import mathcore as mc
from lldmix_core.corpus.eval import build_eval_corpus
from lldmix_core.corpus.local import build_local_minipile
from lldmix_core.corpus.records import iter_records
from lldmix_core.corpus.streams import DomainStreams
from lldmix_core.evaluate import domain_means
from lldmix_core.models import NanoGPTConfig, new_nanogpt
from lldmix_core.scoring import score_texts
from lldmix_core.tokenizers import get_tokenizer
from lldmix_core.train import TrainConfig, train
from timing import load  # noqa: E402  (bench/ is on sys.path when run as a script)


def run(streams, corpus, domains, target_dom_of, steps: int, subsample: int | None) -> tuple[float, float, list]:
    """(scoring seconds, total seconds, weights per schedule step) of one iterative-LLD training."""
    texts, doms = list(corpus.texts), list(corpus.text_domains)
    rng = np.random.default_rng(0)
    idx = np.arange(len(texts)) if subsample is None else np.sort(np.concatenate(
        [rng.choice([i for i, d in enumerate(doms) if d == k], subsample, replace=False) for k in domains]))
    sub_texts, sub_doms = [texts[i] for i in idx], [doms[i] for i in idx]
    n_bytes = np.array([len(texts[i].encode()) for i in idx])
    target_dom = target_dom_of(idx)
    schedule = mc.lld_schedule(steps)
    spent = {"score": 0.0}
    estimates = []

    def on_eval(step, lm, current):
        t0 = time.perf_counter()
        s = score_texts(lm, sub_texts)
        base = domain_means(s.loglik, s.n_tokens, n_bytes, sub_doms, domains, "token")
        spent["score"] += time.perf_counter() - t0
        w = mc.lld_weights(target_dom - base, 1.0, np.full(len(domains), 1 / len(domains)))
        estimates.append(w)
        return w if step < steps else None

    lm = new_nanogpt(NanoGPTConfig(n_layer=2, n_head=4, n_embd=128, block_size=256, vocab_size=320), "bytes", 0)
    t0 = time.perf_counter()
    train(lm, streams, domains, TrainConfig(steps=steps, batch_size=16, block_size=256, warmup_steps=20, seed=0),
          np.full(len(domains), 1 / len(domains)), eval_steps=schedule, on_eval=on_eval)
    total = time.perf_counter() - t0
    return spent["score"], total, estimates


def main() -> None:
    load_before = os.getloadavg()  # figures taken on busy cores are noise-bound: say the load
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=500)  # the quickstart's run length
    ap.add_argument("--per-domain", type=int, default=24)
    ap.add_argument("--subsample", type=int, nargs="+", default=[4, 2])
    args = ap.parse_args()
    setup_threads()
    import tempfile
    from pathlib import Path

    out = Path(tempfile.gettempdir()) / "lldmix-bench-minipile"
    build_local_minipile(out)
    tok = get_tokenizer("bytes")
    streams = DomainStreams.build(iter_records(out / "train.jsonl"), tok,
                                  Path(tempfile.gettempdir()) / "lldmix-bench-streams")
    corpus = build_eval_corpus(iter_records(out / "val.jsonl"), per_domain=args.per_domain, seed=0, name="bench",
                               source=str(out))
    domains = tuple(sorted(set(corpus.domains)))
    # a stand-in target: a briefly trained model, scored once on the whole corpus
    target = new_nanogpt(NanoGPTConfig(n_layer=2, n_head=4, n_embd=128, block_size=256, vocab_size=320), "bytes", 7)
    train(target, streams, domains, TrainConfig(steps=30, batch_size=16, block_size=256, warmup_steps=5, seed=7),
          np.full(len(domains), 1 / len(domains)))
    ts = score_texts(target, list(corpus.texts))
    all_bytes = np.array([len(t.encode()) for t in corpus.texts])

    def target_dom_of(idx):
        return domain_means(ts.loglik[idx], ts.n_tokens[idx], all_bytes[idx], [corpus.text_domains[i] for i in idx],
                            domains, "token")

    n_sched = len(mc.lld_schedule(args.steps))
    print(f"iterative-LLD, {args.steps} steps, {n_sched} schedule steps, {len(corpus.texts)} evaluation texts "
          f"({len(domains)} domains)")
    full = run(streams, corpus, domains, target_dom_of, args.steps, None)
    results = [("whole corpus", full)] + [(f"{k}/domain subsample", run(streams, corpus, domains, target_dom_of,
                                                                        args.steps, k)) for k in args.subsample]
    from lldmix_core.mathcore.aggregate import aggregate_geometric
    from lldmix_core.mathcore.divergence import kl_categorical

    rf = aggregate_geometric(np.array(full[2]))
    for name, (score_s, total_s, est) in results:
        share = score_s / (total_s - score_s)
        agg = aggregate_geometric(np.array(est))
        print(f"  {name:<22} scoring {score_s:6.1f} s, training {total_s - score_s:6.1f} s: overhead {100 * share:5.1f} % "
              f"of training time (target ≤ 10 %); recipe KL to the whole-corpus one {kl_categorical(rf, agg):.4f} nats")
    print(load(load_before))


if __name__ == "__main__":
    main()
