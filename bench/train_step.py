"""Training-step throughput: our trainer vs a bare forward/backward/AdamW loop, side by side.

    python bench/train_step.py [--steps 30] [--layers 2] [--dims 128] [--block 256] [--batch 16]

Both loops train the same byte-level NanoGPT from the same initial weights on the same batches of
random tokens (the data source does not change the arithmetic). Target: trainer ≥ 0.95× the bare loop
(its per-step bookkeeping — domain draw, LR schedule, history, callbacks — costs ≤ 5 %).
"""

from __future__ import annotations

import argparse
import os
import copy
import time

import numpy as np
import torch

from common import setup_threads
from lldmix_core.models import NanoGPTConfig, new_nanogpt
from lldmix_core.train import TrainConfig, lm_loss, make_optimizer, train
from timing import load  # noqa: E402  (bench/ is on sys.path when run as a script)


class RandomStreams:
    def __init__(self, vocab: int):
        self.vocab = vocab

    def get_batch(self, domain, batch_size, block_size, generator):
        x = torch.randint(0, self.vocab, (batch_size, block_size + 1), generator=generator)
        return x[:, :-1], x[:, 1:]


def bare_loop(lm, streams, cfg: TrainConfig) -> None:
    opt = make_optimizer(lm.module, cfg)
    g = torch.Generator().manual_seed(0)
    lm.module.train()
    for _ in range(cfg.steps):
        x, y = streams.get_batch("a", cfg.batch_size, cfg.block_size, g)
        loss = lm_loss(lm, x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.module.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)


def main() -> None:
    load_before = os.getloadavg()  # figures taken on busy cores are noise-bound: say the load
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dims", type=int, default=128)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    setup_threads()
    cfg_m = NanoGPTConfig(vocab_size=320, block_size=args.block, n_layer=args.layers, n_head=4, n_embd=args.dims)
    init = new_nanogpt(cfg_m, "bytes", seed=0)
    streams = RandomStreams(257)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, block_size=args.block, warmup_steps=5)
    tokens = args.steps * args.batch * args.block
    t_ours, t_bare = [], []
    for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits both alike
        lm = copy.deepcopy(init)
        t0 = time.perf_counter()
        train(lm, streams, ["a", "b"], cfg, np.array([0.5, 0.5]))
        t_ours.append(time.perf_counter() - t0)
        lm = copy.deepcopy(init)
        t0 = time.perf_counter()
        bare_loop(lm, streams, cfg)
        t_bare.append(time.perf_counter() - t0)
    ours, bare = min(t_ours), min(t_bare)
    print(f"model: NanoGPT {args.layers}×{args.dims}, context {args.block}, batch {args.batch}, {init.n_params:,} parameters")
    print(f"bare forward/backward/AdamW loop: {tokens / bare:10,.0f} tokens/s ({bare / args.steps * 1000:.1f} ms/step)")
    print(f"lldmix trainer:                   {tokens / ours:10,.0f} tokens/s ({ours / args.steps * 1000:.1f} ms/step)")
    print(f"ratio trainer / bare loop: {bare / ours:.3f}x (target >= 0.95x)")
    print(load(load_before))


if __name__ == "__main__":
    main()
