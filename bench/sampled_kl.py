"""Sampled KL cost at the quickstart's size: draw n samples of T bytes from a byte-level NanoGPT
(2 layers × 128 dims, context 256, as runs/quickstart.yaml) and score them under a second model.

    python bench/sampled_kl.py [--n 256] [--tokens 256] [--threads 2]

Prints seconds for drawing (target) and for scoring under one model; random weights (speed does not
depend on training). The estimate itself is printed with its unit but means nothing here.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from lldmix_core.models.base import nanogpt_model
from lldmix_core.models.nanogpt import NanoGPT, NanoGPTConfig
from lldmix_core.sampled_kl import sample_texts, sampled_kl
from lldmix_core.tokenizers import ByteTokenizer
from timing import load  # noqa: E402  (bench/ is on sys.path when run as a script)


def main() -> None:
    load_before = os.getloadavg()  # figures taken on busy cores are noise-bound: say the load
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = NanoGPTConfig(vocab_size=320, block_size=256, n_layer=2, n_head=4, n_embd=128)
    torch.manual_seed(0)
    p = nanogpt_model(NanoGPT(cfg), ByteTokenizer())
    q = nanogpt_model(NanoGPT(cfg), ByteTokenizer())
    t0 = time.perf_counter()
    s = sample_texts(p, a.n, a.tokens, seed=0)
    t1 = time.perf_counter()
    est = sampled_kl(s, p, q)
    t2 = time.perf_counter()
    print(f"{a.n} samples × {a.tokens} tokens, {a.threads} threads: draw {t1 - t0:.1f} s, "
          f"score under one model {t2 - t1:.1f} s; KL {est.mean:.4f} ± {est.se:.4f} {est.unit}")
    print(load(load_before))


if __name__ == "__main__":
    main()
