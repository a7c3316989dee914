"""Design numbers for the recovery benchmark (docs/RECOVERY.md): the seeded truths and their skew,
and the estimated wall time on 2 CPU cores from the throughput in the feasibility note.

Run: python scripts/recovery_cost.py   (numpy only; prints nats and seconds; nothing is trained)
Every constant below is either quoted from /work/shared/design/FEASIBILITY.md (measured, 2 threads,
fp32, byte-level NanoGPT 2 × 128, context 256, batch 16) or marked ESTIMATE (not measured).
"""

from __future__ import annotations

import numpy as np

DOMAINS = ["Python", "C++", "PyDocs", "Legal", "READMEs", "JSON", "Math"]  # corpus/local.py order
TRUTHS = [  # (name, Dirichlet concentration per domain, seed)
    ("dir-a5-s1", 5.0, 1), ("dir-a5-s2", 5.0, 2),  # mild skew
    ("dir-a2-s1", 2.0, 1), ("dir-a2-s2", 2.0, 2),  # medium
    ("dir-a0.7-s1", 0.7, 1), ("dir-a0.7-s2", 0.7, 2),  # strong
]
PAPER_STYLE = ("paper-x2", 5.0, 7, {"Python": 2.0, "C++": 2.0})  # Dirichlet base mixture, code ×2

# --- measured (FEASIBILITY.md) -----------------------------------------------------------------
S_PER_STEP_SMALL = 85.0 / 500  # s/step end to end: "Base runs: 500 steps, ~85 s each"
SCORE_TOK_S_SMALL = 81_000  # tokens/s scoring, byte vocab 2 × 128
TRAIN_TOK_S_SMALL = 25_800  # tokens/s training
FIRST_PASS_SHARE_K4 = 0.121  # docs/BENCHMARKS.md: Δ scoring at 16 steps on 4 texts/domain, share of training
# --- estimates --------------------------------------------------------------------------------
MEDIUM_COST = (4 * 192 ** 2) / (2 * 128 ** 2)  # ESTIMATE: 4 × 192 vs 2 × 128, ∝ n_layer·d² = 4.5×
EVAL_TEXTS, BYTES_PER_TEXT, WINDOW_COST = 7 * 24, 1000, 1.8  # ESTIMATE: ≤1024-byte chunks, rolling windows
GRAM_TEXTS = 7 * 8  # gram.texts_per_domain 8, one backward per domain: ~ training cost per token
SCHEDULE_STEPS = 16
SAMPLE_GEN_S_PER_TARGET = 30.0  # ESTIMATE: sampled-KL samples drawn once per target (unmeasured)


def truths() -> list[tuple[str, np.ndarray]]:
    out = [(n, np.random.default_rng(s).dirichlet(np.full(len(DOMAINS), a))) for n, a, s in TRUTHS]
    name, a, s, mult = PAPER_STYLE
    base = np.random.default_rng(s).dirichlet(np.full(len(DOMAINS), a))
    w = base * np.array([mult.get(d, 1.0) for d in DOMAINS])
    out.append((name, w / w.sum()))
    return out


def kl(p, q) -> float:
    return float(np.sum(p * np.log(p / q)))


def costs(size_factor: float, base_steps: int) -> dict[str, float]:
    step = S_PER_STEP_SMALL * size_factor
    full_eval = EVAL_TEXTS * BYTES_PER_TEXT * WINDOW_COST / SCORE_TOK_S_SMALL * size_factor
    gram = SCHEDULE_STEPS * GRAM_TEXTS * BYTES_PER_TEXT / TRAIN_TOK_S_SMALL * size_factor
    base = base_steps * step
    return {"step": step, "full_eval": full_eval,
            "pass1": base * (1 + FIRST_PASS_SHARE_K4) + gram + full_eval,  # Δ_t, G_t at 16 steps, final KL
            "pass2": base + full_eval}


def main() -> None:
    u = np.full(len(DOMAINS), 1 / len(DOMAINS))
    print("truth           " + " ".join(f"{d:>7}" for d in DOMAINS) + "   KL(uniform‖truth) nats")
    for name, w in truths():
        print(f"{name:<15} " + " ".join(f"{x:7.3f}" for x in w) + f"   {kl(u, w):.3f}")
    B = 500
    ratios = (1, 2, 4)
    n_truth, seeds = len(TRUTHS) + 1, 2
    rows = []
    s, m = costs(1.0, B), costs(MEDIUM_COST, B)
    # small model: every truth × every step ratio × 2 seeds
    tgt_s = n_truth * sum(r * B for r in ratios) * s["step"] + n_truth * len(ratios) * SAMPLE_GEN_S_PER_TARGET
    ref_s = sum(r * B for r in ratios) * s["step"]  # uniform reference targets (calibrated Δ), one per ratio
    p1_s = n_truth * len(ratios) * seeds * s["pass1"]
    rows += [("S targets (7 truths × 3 ratios)", tgt_s), ("S uniform reference targets (3)", ref_s),
             ("S pass 1, shared by all estimators (42)", p1_s)]
    # pass 2 (final KL): uniform once per seed (scored against each target), paper aggregated + 2 finalists
    p2_s = n_truth * len(ratios) * seeds * 3 * s["pass2"] + seeds * s["pass2"] + \
        n_truth * len(ratios) * seeds * s["full_eval"]
    rows.append(("S pass 2: paper-agg + 2 finalists (126) + uniform", p2_s))
    # medium model: 3 truths (mild, strong, paper-style) × ratio 2 × 2 seeds
    n_m = 3
    tgt_m = n_m * 2 * B * m["step"] + n_m * SAMPLE_GEN_S_PER_TARGET + 2 * B * m["step"]  # + its reference
    p1_m = n_m * seeds * m["pass1"]
    p2_m = n_m * seeds * 3 * m["pass2"] + seeds * m["pass2"]
    rows += [("M targets + reference (3 + 1, ratio 2)", tgt_m), ("M pass 1 (6)", p1_m), ("M pass 2 (18 + uniform)", p2_m)]
    # pretrained base: one pretraining per seed on another mixture, then 3 truths × ratio 2 (targets reused)
    pre = seeds * B * s["step"] + n_m * seeds * (s["pass1"] + 3 * s["pass2"]) + seeds * s["pass2"]
    rows.append(("S pretrained-base rows (3 truths × 2 seeds)", pre))
    print(f"\nper run, small (2×128), base {B} steps: pass 1 {s['pass1']:.0f} s, pass 2 {s['pass2']:.0f} s; "
          f"medium (4×192, ESTIMATE ×{MEDIUM_COST:.1f}): pass 1 {m['pass1']:.0f} s, pass 2 {m['pass2']:.0f} s")
    total = 0.0
    recovery_only = tgt_s + ref_s + p1_s
    for name, sec in rows:
        total += sec
        print(f"{name:<52} {sec:8.0f} s  {sec / 3600:5.2f} h")
    print(f"{'recovery columns only (S targets, refs, pass 1)':<52} {recovery_only:8.0f} s  {recovery_only / 3600:5.2f} h")
    print(f"{'total (idle machine, 2 cores)':<52} {total:8.0f} s  {total / 3600:5.2f} h")


if __name__ == "__main__":
    main()
