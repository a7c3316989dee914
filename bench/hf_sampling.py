"""Drawing samples from a Hugging Face GPT-2 target with its key/value cache against recomputing the
whole context for every token (issue 26): the same draws, side by side, in interleaved rounds.

    python bench/hf_sampling.py [--n 256] [--tokens 256] [--layers 4] [--width 256] [--rounds 2]

A GPT-2 of `layers` × `width` with the GPT-2 vocabulary (50,257) and a 1,024-token context, random
weights (speed does not depend on training). Prints seconds per path per round, the ratio with its
spread over rounds, and the load average before and after (a ratio taken on busy cores is noise-bound).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    import transformers

    from lldmix_core.models.hf import load_hf_model
    from lldmix_core.sampled_kl import sample_texts

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    load0 = os.getloadavg()[0]
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=50257, n_embd=a.width, n_layer=a.layers, n_head=max(1, a.width // 64),
                                  n_positions=1024)
    with tempfile.TemporaryDirectory() as d:
        transformers.GPT2LMHeadModel(cfg).save_pretrained(Path(d) / "gpt2")
        lm = load_hf_model(Path(d) / "gpt2", tokenizer="gpt2")
    times = {True: [], False: []}
    draws = {}
    for _ in range(a.rounds):
        for cache in (True, False):  # interleaved: both paths see the same machine state
            t0 = time.perf_counter()
            draws[cache] = sample_texts(lm, a.n, a.tokens, seed=0, kv_cache=cache)
            times[cache].append(time.perf_counter() - t0)
    same = draws[True].ids == draws[False].ids
    ratios = [u / c for u, c in zip(times[False], times[True])]
    print(f"HF GPT-2 {a.layers}×{a.width} (vocab 50,257), {a.n} draws × {a.tokens} tokens, {a.threads} threads")
    print(f"  with the key/value cache: {', '.join(f'{t:.1f}' for t in times[True])} s per round")
    print(f"  recomputing the context:  {', '.join(f'{t:.1f}' for t in times[False])} s per round")
    print(f"  ratio {min(ratios):.2f}–{max(ratios):.2f}× (uncached / cached, per round); identical draws: {same}")
    print(f"  load average (1 min) before {load0:.2f}, after {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
