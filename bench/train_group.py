"""Grouped training against one model at a time, side by side in one run (issue #26, item 1).

    python bench/train_group.py [--models 6] [--steps 20] [--rounds 3] [--sizes 64,128] [--cell runs/ladder.yaml:S-100-twin]

Per size (2 layers × d, byte vocabulary, context 256, batch 16, as the benchmark's cells), in
interleaved rounds: `--models` NanoGPTs trained one after another by `train.train`, and the same
models trained together by `train_group.train_group`; tokens/s per model-token and GFLOP/s
(6 · parameters · tokens, attention left out) beside the machine's fp32 matmul throughput measured
in the same run. `--cell FILE:CELL` also times one benchmark cell end to end (`lldmix run FILE --cells
CELL`; e.g. the ladder's S-100-twin: uniform and oracle × 3 seeds, a twin target per seed, for each of
its two truths, evaluation included) with training.group on and off, each in a fresh LLDMIX_HOME.
Goals (issue #26): grouped ≥ 2× one-at-a-time per model-token at 2×64; a cell ≥ 3× faster. Take the
figures on quiet cores (the load average is printed): on shared, loaded cores one model at a time loses
most to torch's per-op thread barriers, which flatters grouping.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import setup_threads
from lldmix_core.models import NanoGPTConfig, new_nanogpt
from lldmix_core.train import TrainConfig, train
from lldmix_core.train_group import GroupMember, train_group

ROOT = Path(__file__).resolve().parents[1]


class RandomStreams:
    """Random bytes for any domain: the data source does not change the arithmetic."""

    def get_batch(self, domain, batch_size, block_size, generator):
        x = torch.randint(0, 256, (batch_size, block_size + 1), generator=generator)
        return x[:, :-1], x[:, 1:]


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """fp32 GFLOP/s of an n×n×n matmul on this machine (best of `repeats`)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _spread(xs: list[float]) -> float:
    return (max(xs) - min(xs)) / statistics.median(xs)


def compare_training(d: int, models: int, steps: int, rounds: int) -> dict:
    cfg_m = NanoGPTConfig(vocab_size=320, block_size=256, n_layer=2, n_head=4, n_embd=d)
    cfgs = [TrainConfig(steps=steps, batch_size=16, block_size=256, warmup_steps=5, seed=s) for s in range(models)]
    w = np.array([0.5, 0.5])
    n_params = new_nanogpt(cfg_m, "bytes", seed=0).n_params
    one, grouped = [], []
    for path in (train, None):  # warm-up, not timed: the first steps of a process pay one-time costs
        lms = [new_nanogpt(cfg_m, "bytes", seed=s) for s in range(2)]
        warm = [dataclasses.replace(c, steps=3) for c in cfgs[:2]]
        if path is train:
            [train(lm, RandomStreams(), ["a", "b"], c, w) for lm, c in zip(lms, warm)]
        else:
            train_group([GroupMember(lm, c, w) for lm, c in zip(lms, warm)], RandomStreams(), ["a", "b"])
    for _ in range(rounds):  # interleaved, so drift on a shared machine hits both alike
        lms = [new_nanogpt(cfg_m, "bytes", seed=s) for s in range(models)]
        one.append(_timed(lambda: [train(lm, RandomStreams(), ["a", "b"], c, w) for lm, c in zip(lms, cfgs)]))
        lms = [new_nanogpt(cfg_m, "bytes", seed=s) for s in range(models)]
        members = [GroupMember(lm, c, w) for lm, c in zip(lms, cfgs)]
        grouped.append(_timed(lambda: train_group(members, RandomStreams(), ["a", "b"])))
    tokens = models * steps * 16 * 256
    out = {"d": d, "params": n_params, "tokens": tokens}
    for name, ts in (("one", one), ("grouped", grouped)):
        t = statistics.median(ts)
        out[name] = {"tokens_s": tokens / t, "gflops": 6 * n_params * tokens / t / 1e9, "spread": _spread(ts)}
    out["ratio"] = statistics.median([o / g for o, g in zip(one, grouped)])  # per round, then the median
    out["ratio_range"] = (min(o / g for o, g in zip(one, grouped)), max(o / g for o, g in zip(one, grouped)))
    return out


def time_cell(cell: str, group: bool) -> float:
    """Wall seconds of `lldmix run FILE --cells CELL` (cell = "FILE:CELL") in a fresh home."""
    path, _, name = cell.partition(":")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LLDMIX_HOME": str(Path(tmp) / "home"), "LLDMIX_DB_URL": "", "MLFLOW_TRACKING_URI": ""}
        subprocess.run([sys.executable, "-m", "lldmix_core.cli", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        args = [sys.executable, "-m", "lldmix_core.cli", "run", path, "--no-mlflow"] + (["--cells", name] if name else [])
        t0 = time.perf_counter()
        subprocess.run(args + ([] if group else ["--no-group"]), cwd=ROOT, env=env, check=True, capture_output=True)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=6)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--cell", default="", help="FILE:CELL of a benchmark file to time end to end on both paths")
    args = ap.parse_args()
    setup_threads()
    load0 = os.getloadavg()
    peak = matmul_gflops()
    print(f"load average at the start {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f} on {os.cpu_count()} CPUs; "
          f"fp32 matmul (1024³): {peak:.1f} GFLOP/s")
    print(f"{args.models} models × {args.steps} steps, batch 16 × context 256, {args.rounds} interleaved rounds")
    print("| model | path | tokens/s (per model-token) | GFLOP/s | of matmul peak | spread of rounds |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for d in map(int, args.sizes.split(",")):
        r = compare_training(d, args.models, args.steps, args.rounds)
        for name in ("one", "grouped"):
            x = r[name]
            label = "one at a time (train.train)" if name == "one" else f"grouped, {args.models} models (train_group)"
            print(f"| 2×{d} ({r['params']:,} params) | {label} | {x['tokens_s']:,.0f} | {x['gflops']:.1f} | "
                  f"{x['gflops'] / peak:.0%} | {x['spread']:.0%} |")
        ratios.append((d, r["ratio"], r["ratio_range"]))
    for d, ratio, (lo, hi) in ratios:
        print(f"grouped / one at a time at 2×{d}: {ratio:.2f}× per model-token (rounds {lo:.2f}–{hi:.2f}×; goal at 2×64: ≥ 2×)")
    if args.cell:
        one, grouped = time_cell(args.cell, False), time_cell(args.cell, True)
        print(f"cell {args.cell} end to end: one at a time {one:.0f} s, grouped {grouped:.0f} s: "
              f"{one / grouped:.2f}× (goal ≥ 3×)")
    load1 = os.getloadavg()
    print(f"load average at the end {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f}")


if __name__ == "__main__":
    main()
