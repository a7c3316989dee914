"""`lldmix run runs/recovery.yaml --dry-run`: the benchmark's grid (cells × truths, references),
each truth's distance from uniform, what is already in the database, and a wall-time estimate."""

from __future__ import annotations

from lldmix_core.methods import is_parent_row
from lldmix_core.benchmark.suite import BenchmarkCell, BenchmarkSpec, kl_uniform_to, seconds_estimate

# Measured on this project's 2-core CPU machine (scripts/speed check, fp32, batch 16 × 256 bytes):
# seconds per training step of a byte-level NanoGPT n_layer × n_embd. Other sizes scale by n_layer·d².
# 2×32: the ladder's 100-step runs trained in 3.4–3.8 s (below 2×32 a step's fixed costs dominate).
STEP_SECONDS = {"2x64": 0.10, "2x128": 0.17, "2x32": 0.04}


def describe_benchmark(b: BenchmarkSpec, cells: list[BenchmarkCell], store=None) -> str:
    lines = [f"benchmark {b.benchmark!r}: {len(cells)} specs "
             f"({sum(not c.is_reference for c in cells)} target cells, {sum(c.is_reference for c in cells)} references)"]
    lines.append("  truths (KL(uniform ‖ truth), nats):")
    seen = set()
    for c in cells:
        if c.truth in seen or c.is_reference:
            continue
        seen.add(c.truth)
        top = sorted(c.weights.items(), key=lambda kv: -kv[1])[:3]
        lines.append(f"    {c.truth:<14} {kl_uniform_to(c.weights):6.3f}   largest: "
                     + ", ".join(f"{d} {w:.2f}" for d, w in top))
    lines.append("  cells:")
    done_names = set()
    if store is not None:
        done_names = {r.name for r in store.list_runs() if is_parent_row(r.method) and r.status == "finished"}
    for c in cells:
        s = c.spec
        a, t = s.arch, s.target.train
        base = "random base" if s.base.init else f"base trained {s.base.train.steps} steps first"
        state = "  [finished]" if s.name in done_names else ""
        target = f"twin targets ({s.training.steps} steps)" if t.twin else f"target {t.steps} steps"
        lines.append(f"    {s.name:<40} {a.n_layer}×{a.n_embd}, {target}, base {s.training.steps} steps, "
                     f"{base}, seeds {list(s.seeds)}, methods {list(s.methods)}{state}")
    est = seconds_estimate(cells, STEP_SECONDS)
    when = f"{est / 60:.0f} min" if est >= 120 else f"{est:.0f} s"
    lines.append(f"  estimated wall time on 2 CPU cores, nothing cached: ≈ {when} "
                 f"(training steps at {STEP_SECONDS} s/step × 1.4 for evaluation, plus the re-weighting runs' Δ "
                 f"estimates and Gram by their scored tokens; finished cells cost nothing)")
    return "\n".join(lines)
